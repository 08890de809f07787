"""`pipe extract`: line art for every prepared image, by one or more methods, batched on a device."""
