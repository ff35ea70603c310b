"""One run out of many parts: combined ranks, merged shards, torch.distributed."""
