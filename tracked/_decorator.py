"""``@tracked_eval``: the one public decorator.

The wrapper kind (plain, generator, coroutine, async generator) is chosen
once, when the decorator is applied; each call only reads the settings
(argument > environment > default) and, unless tracking is off, runs the
function inside a ``Run``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from .common.options import Settings, check_options, resolve
from .common.result import EvalResult
from .common.warn import warn
from .recording.generators import TrackedAsyncGenerator, TrackedGenerator
from .recording.run import COMPLETED, Run, status_of

if TYPE_CHECKING:  # typing machinery the checker needs and the running program does not
    from typing import ParamSpec, Protocol, TypeVar

    from typing_extensions import Unpack

    from .common.options import Options

    P = ParamSpec("P")
    F = TypeVar("F", bound=Callable[..., Any])

    class _Decorator(Protocol):
        """What ``tracked_eval(...)`` with options returns: the decorator, typed per form."""

        @overload
        def __call__(
            self, func: Callable[P, Coroutine[Any, Any, Any]], /
        ) -> Callable[P, Coroutine[Any, Any, EvalResult]]: ...
        @overload
        def __call__(
            self, func: Callable[P, AsyncIterator[Any]], /
        ) -> Callable[P, Coroutine[Any, Any, EvalResult]]: ...
        @overload
        def __call__(self, func: Callable[P, Any], /) -> Callable[P, EvalResult]: ...


Args = tuple[Any, ...]
Kwargs = dict[str, Any]
#: wrapt's wrapper shape: (wrapped, instance, args, kwargs).
Wrapper = Callable[[Callable[..., Any], Any, Args, Kwargs], Any]


def _begin(
    wrapped: Callable[..., Any], args: Args, kwargs: Kwargs, settings: Settings, yields: bool
) -> tuple[Run | None, Args, Kwargs]:
    """A started run and the arguments to call with (the dataset without its done part when resuming),
    or no run when tracked itself cannot start one (then the call runs untracked).

    The one place that decides where a run goes: the default sinks (``sinks.defaults``), or, on one
    rank of a ``torch.distributed`` job, a part gathered into one global run (``scaleout``)."""
    from .common.call import describe_call

    given_args, given_kwargs = args, kwargs
    earlier = None
    if not settings.enabled:  # off: the same kind of result, counted here, recorded and printed nowhere
        return _untracked(wrapped, settings, yields), args, kwargs
    try:
        from .scaleout.distributed import RankRun, ranks

        shared = ranks(settings)
        if shared is not None:  # one rank of many: it scores its part; the parts make one run at the end
            from .sinks.defaults import Opening

            name, call = _name(wrapped, settings), describe_call(wrapped, args, kwargs, settings, yields)
            # ClearML's task is made in the call (not in the background): the other ranks score meanwhile.
            opening = Opening(settings, name, call, terminal=False, background=False) if shared.rank == 0 else None
            # This rank's run first: a signal or the exit from here on ends it and records its part. Then rank 0's
            # global run starts, with its sinks: ClearML's task is made while the other ranks score.
            part = RankRun(settings, name, call, shared, opening)
            part.open_report()
            return part, args, kwargs
    except Exception as exc:  # noqa: BLE001 - never break the user's evaluation
        warn(f"could not join the other ranks ({type(exc).__name__}: {exc}); this rank's run is its own")
    try:
        from .sinks.defaults import follow, open_run

        name = _name(wrapped, settings)
        call = describe_call(wrapped, args, kwargs, settings, yields)
        if settings.resume:
            from .store.resume import prepare

            earlier, args, kwargs = prepare(wrapped, args, kwargs, settings, name, call)
        run = open_run(settings, name, call, earlier)
        run.follower = live = follow(run)
        live.start()
        return run, args, kwargs
    except Exception as exc:  # noqa: BLE001 - never break the user's evaluation
        warn(f"could not start tracking ({type(exc).__name__}: {exc}); the evaluation runs, reported nowhere")
        if earlier is not None:
            earlier.release()
    try:  # the call still returns what it would have with tracking: its result, counted here (all of it)
        return _untracked(wrapped, settings, yields), given_args, given_kwargs
    except Exception:  # noqa: BLE001
        return None, given_args, given_kwargs


def _untracked(wrapped: Callable[..., Any], settings: Settings, yields: bool) -> Run:
    """A run with no sinks: the result is made as usual; nothing is written, streamed or printed."""
    from .common.call import CallInfo

    return Run(settings, _name(wrapped, settings), CallInfo(yields=yields), [])


def _name(wrapped: Callable[..., Any], settings: Settings) -> str:
    return settings.task_name or getattr(wrapped, "__qualname__", None) or repr(wrapped)


def _settings(given: Mapping[str, Any]) -> Settings:
    settings, problems = resolve(given)
    for problem in problems:
        warn(problem, stacklevel=4)
    return settings


def _plain(given: Mapping[str, Any]) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Args, kwargs: Kwargs) -> Any:
        settings = _settings(given)
        run, args, kwargs = _begin(wrapped, args, kwargs, settings, yields=False)
        if run is None:
            return wrapped(*args, **kwargs)
        from .recording.lifecycle import redeliver, sigterm_as_exception

        try:
            with sigterm_as_exception():
                returned = wrapped(*args, **kwargs)
        except BaseException as exc:
            run.finish(status_of(exc), error=exc)
            redeliver(exc)
            raise
        return run.finish(COMPLETED, returned)

    return wrapper


def _capture(inner: Generator[Any, Any, Any], box: list[Any]) -> Generator[Any, Any, None]:
    # ``yield from`` runs in C and keeps the generator's return value.
    box.append((yield from inner))


def _generator(given: Mapping[str, Any]) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Args, kwargs: Kwargs) -> Any:
        settings = _settings(given)
        run, args, kwargs = _begin(wrapped, args, kwargs, settings, yields=True)
        if run is None:
            return wrapped(*args, **kwargs)
        if settings.lazy:
            try:
                return TrackedGenerator(run, wrapped(*args, **kwargs))
            except BaseException as exc:
                run.finish(status_of(exc), error=exc)
                raise
        from .recording.lifecycle import redeliver, sigterm_as_exception

        box: list[Any] = []
        add = run.add
        try:
            with sigterm_as_exception():
                for item in _capture(wrapped(*args, **kwargs), box):
                    add(item)
        except BaseException as exc:
            run.finish(status_of(exc), error=exc)
            redeliver(exc)
            raise
        return run.finish(COMPLETED, box[0] if box else None)

    return wrapper


def _coroutine(given: Mapping[str, Any]) -> Wrapper:
    async def tracked_call(wrapped: Callable[..., Any], args: Args, kwargs: Kwargs, settings: Settings) -> Any:
        run, args, kwargs = _begin(wrapped, args, kwargs, settings, yields=False)
        if run is None:
            return await wrapped(*args, **kwargs)
        try:
            returned = await wrapped(*args, **kwargs)
        except BaseException as exc:
            run.finish(status_of(exc), error=exc)
            raise
        return run.finish(COMPLETED, returned)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Args, kwargs: Kwargs) -> Any:
        return tracked_call(wrapped, args, kwargs, _settings(given))

    return wrapper


def _async_generator(given: Mapping[str, Any]) -> Wrapper:
    async def tracked_call(wrapped: Callable[..., Any], args: Args, kwargs: Kwargs, settings: Settings) -> Any:
        run, args, kwargs = _begin(wrapped, args, kwargs, settings, yields=True)
        if run is None:
            return [item async for item in wrapped(*args, **kwargs)]
        add = run.add
        try:
            async for item in wrapped(*args, **kwargs):
                add(item)
        except BaseException as exc:
            run.finish(status_of(exc), error=exc)
            raise
        return run.finish(COMPLETED)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Args, kwargs: Kwargs) -> Any:
        settings = _settings(given)
        if settings.lazy:
            run, args, kwargs = _begin(wrapped, args, kwargs, settings, yields=True)
            inner = wrapped(*args, **kwargs)
            return inner if run is None else TrackedAsyncGenerator(run, inner)
        return tracked_call(wrapped, args, kwargs, settings)

    return wrapper


@functools.cache
def _function_wrapper_class() -> type:
    # wrapt imports asyncio (~100 ms); import it when the first function is
    # decorated, not at ``import tracked``.
    import wrapt

    class BoundTrackedFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
        """The decorated function bound to an instance or class; pickles as the method it is."""

        def __reduce_ex__(self, protocol: Any) -> str | tuple[Any, ...]:
            # Through an instance: that instance's attribute; through the class
            # (or a classmethod): the class's attribute. Both are found by name again.
            owner = self._self_instance if self._self_instance is not None else self._self_owner
            return (getattr, (owner, self.__name__))

        @property
        def __func__(self) -> Any:
            # inspect looks through a bound method at its function: ours, with its code flags.
            return self._self_parent

    class TrackedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
        """The decorated function. Pickles by reference (module + qualified
        name), as a plain function does, so it can go to a process pool."""

        __bound_function_wrapper__ = BoundTrackedFunction

        def __reduce_ex__(self, protocol: Any) -> str:
            return str(self.__qualname__)

        @property
        def __code__(self) -> Any:
            # inspect reads the kind from the code flags: a generator run to the
            # end returns an EvalResult, an async generator an awaitable of one,
            # so frameworks that check iscoroutinefunction await it.
            code = self.__wrapped__.__code__
            clear, add = getattr(self, "_self_flags", (0, 0))
            return code.replace(co_flags=(code.co_flags & ~clear) | add) if clear or add else code

    return TrackedFunction


# inspect.CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR (fixed by CPython; importing
# inspect for them would double the cost of ``import tracked``).
_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200
#: Code flags (cleared, added) that make ``inspect`` describe what a call returns.
_EAGER_FLAGS: dict[Callable[[Mapping[str, Any]], Wrapper], tuple[int, int]] = {
    _generator: (_CO_GENERATOR, 0),
    _async_generator: (_CO_ASYNC_GENERATOR, _CO_COROUTINE),
}


def _kind(func: Any) -> Callable[[Mapping[str, Any]], Wrapper]:
    import inspect  # ~10 ms: at decoration, not at ``import tracked``

    target = func.__func__ if isinstance(func, (classmethod, staticmethod)) else func
    if inspect.isasyncgenfunction(target):
        return _async_generator
    if inspect.iscoroutinefunction(target):
        return _coroutine
    if inspect.isgeneratorfunction(target):
        return _generator
    return _plain


@overload
def tracked_eval(func: Callable[P, Coroutine[Any, Any, Any]], /) -> Callable[P, Coroutine[Any, Any, EvalResult]]: ...
# An async generator is typed by its annotation: AsyncGenerator or AsyncIterator (AsyncGenerator's base).
@overload
def tracked_eval(func: Callable[P, AsyncIterator[Any]], /) -> Callable[P, Coroutine[Any, Any, EvalResult]]: ...
@overload
def tracked_eval(func: Callable[P, Any], /) -> Callable[P, EvalResult]: ...
@overload
def tracked_eval(func: None = None, /, *, lazy: Literal[True], **options: Unpack[Options]) -> Callable[[F], F]: ...
@overload
def tracked_eval(
    func: None = None, /, *, lazy: Literal[False] | None = None, **options: Unpack[Options]
) -> _Decorator: ...


def tracked_eval(func: Any = None, /, **options: Any) -> Any:
    """Track an evaluation function as a ClearML run.

    ``@tracked_eval`` or ``@tracked_eval(project=..., ...)`` on a function
    returning a dict of final metrics, a generator yielding one item per
    example (and optionally returning a dict), or their async forms. Calling
    the decorated function runs the evaluation and returns an ``EvalResult``
    (an awaitable of it for async forms; with ``lazy=True`` a generator is
    returned for the caller to iterate). Options: see ``tracked.Settings``.

    """
    given = check_options(options)

    def decorate(f: Any) -> Any:
        options = given
        inner = getattr(f, "_self_given", None)
        if inner is not None:  # decorated twice (tracked_eval(shard=...)(evaluate)): one run, both options
            options, f = {**inner, **given}, f.__wrapped__
        kind = _kind(f)
        wrapper = _function_wrapper_class()(f, kind(options))
        wrapper._self_given = options
        if not options.get("lazy"):
            wrapper._self_flags = _EAGER_FLAGS.get(kind, (0, 0))
        return wrapper

    return decorate if func is None else decorate(func)
