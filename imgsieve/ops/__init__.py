"""Day-2 operations for fabfile.py (controller only, `ops` extra): the fleet of deployed hosts taken from
the Ansible inventory (fleet), and what each fab task does on it (tasks)."""

from imgsieve.ops.fleet import Fleet, HostSpec, read_inventory
from imgsieve.ops.tasks import logs, predict, progress, restart_consumers, scale_consumers, status

__all__ = [
    "Fleet",
    "HostSpec",
    "logs",
    "predict",
    "progress",
    "read_inventory",
    "restart_consumers",
    "scale_consumers",
    "status",
]
