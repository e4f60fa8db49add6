"""Settings: the attrs classes of every key, the vt_setting.json loader and its checks."""
