"""Real components on one machine, for tests, benchmarks and ``make run``.

Every service starts in its own temporary directory and port and is stopped by PID. Missing Debian packages
are installed when running as root; otherwise :class:`PrerequisiteMissing` names what is missing. Nothing here
is used by the observer, webhook or backend at run time.
"""

from .engines import PAUSE_IMAGE, ContainerdService, DockerEngine
from .images import (
    build_image,
    busybox_image,
    dynamic_image,
    elf_closure,
    pause_image,
    push_image,
    save_image,
)
from .packages import SERVICE_PACKAGES, ensure_packages, is_root
from .process import ManagedProcess, PrerequisiteMissing, free_port, wait_until
from .services import PostgresServer, RegistryServer

__all__ = [
    "PAUSE_IMAGE",
    "SERVICE_PACKAGES",
    "ContainerdService",
    "DockerEngine",
    "ManagedProcess",
    "PostgresServer",
    "PrerequisiteMissing",
    "RegistryServer",
    "build_image",
    "busybox_image",
    "dynamic_image",
    "elf_closure",
    "ensure_packages",
    "free_port",
    "is_root",
    "pause_image",
    "push_image",
    "save_image",
    "wait_until",
]
