"""The ClearML sink: the task, the streamed chart, the final report."""
