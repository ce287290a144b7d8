"""The daemon: lifecycle, config reloads, systemd notifications and watchdog, logs, stats,
and ``edged check``."""
