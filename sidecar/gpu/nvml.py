"""NVML as the sampler uses it: the module loaded once, its errors sorted by what they call for, and
the devices it shows (whole GPUs and MIG devices) found once per session.

``load()`` imports ``pynvml`` (the nvidia-ml-py distribution) or, for tests and demos, any object
with the same functions, named ``module`` or ``module:attribute``
(``tailboard.sidecar.gpu.fake:demo``). NVML's error codes are its ABI (nvml.h: the same numbers in
every version), so they are written here rather than looked up, and a fake works without pynvml.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass, field
from typing import Any

from .layout import FIELDS, bare_uuid, gpu_key, metric

__all__ = ["Trouble", "Device", "load", "classify", "describe", "errors_of", "discover"]

DEFAULT_MODULE = "pynvml"

# nvml.h return codes the sampler tells apart
SUCCESS = 0
UNINITIALIZED = 1
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
NO_DATA = 21
GPU_NOT_FOUND = 28

# argument values of the calls the probes make (nvml.h)
TEMPERATURE_GPU = 0
CLOCK_SM = 1
MEMORY_ERROR_CORRECTED = 0
MEMORY_ERROR_UNCORRECTED = 1
VOLATILE_ECC = 0
MIG_ENABLED = 1


class Trouble(enum.Enum):
    """What an NVML error calls for."""

    UNSUPPORTED = "unsupported"  # this device never gives this field: not asked again this session
    NO_DATA = "no_data"  # nothing to read this time (no per-process samples yet)
    LOST = "lost"  # the device (or NVML's view of it) is gone: reopen NVML later
    NO_DRIVER = "no_driver"  # no library, no driver: no telemetry on this host
    OTHER = "other"  # this value is skipped this time, counted


_TROUBLE = {
    NOT_SUPPORTED: Trouble.UNSUPPORTED,
    NO_PERMISSION: Trouble.UNSUPPORTED,  # asking again will not grant it
    FUNCTION_NOT_FOUND: Trouble.UNSUPPORTED,  # an older driver
    SUCCESS: Trouble.NO_DATA,  # pynvml raises it when a process query finds no samples
    NOT_FOUND: Trouble.NO_DATA,
    NO_DATA: Trouble.NO_DATA,
    UNINITIALIZED: Trouble.LOST,
    GPU_IS_LOST: Trouble.LOST,
    RESET_REQUIRED: Trouble.LOST,
    GPU_NOT_FOUND: Trouble.LOST,
    LIBRARY_NOT_FOUND: Trouble.NO_DRIVER,
    DRIVER_NOT_LOADED: Trouble.NO_DRIVER,
    LIB_RM_VERSION_MISMATCH: Trouble.NO_DRIVER,  # the library does not match the loaded driver
}


def load(spec: str = DEFAULT_MODULE) -> Any:
    """The NVML module ``spec`` names (``module`` or ``module:attribute``); ImportError when it is
    not installed, ValueError for a malformed name or a missing attribute."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ValueError(f"not a module name: {spec!r} (expected module or module:attribute)")
    module = importlib.import_module(module_name)
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{module_name} has no attribute {attribute!r}") from None


def errors_of(nv: Any) -> tuple[type[BaseException], ...]:
    """The exception classes an NVML call of ``nv`` raises for NVML's own failures."""
    found: list[type[BaseException]] = [nv.NVMLError]
    mismatch = getattr(nv, "NVMLLibraryMismatchError", None)  # pynvml: a function the driver lacks
    if isinstance(mismatch, type) and issubclass(mismatch, BaseException):
        found.append(mismatch)
    return tuple(found)


def code_of(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    if type(value) is int:
        return value
    return FUNCTION_NOT_FOUND if type(exc).__name__ == "NVMLLibraryMismatchError" else None


def classify(exc: BaseException) -> Trouble:
    code = code_of(exc)
    return Trouble.OTHER if code is None else _TROUBLE.get(code, Trouble.OTHER)


def describe(exc: BaseException) -> str:
    """An NVML error in a few words (pynvml's ``str()`` may itself call into NVML, and fail)."""
    name = type(exc).__name__.removeprefix("NVMLError_")
    code = code_of(exc)
    try:
        text = str(exc)
    except Exception:
        text = ""
    if code is None:
        return f"{name}: {text}" if text else name
    return f"{text or name} (NVML error {code})"


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass
class Device:
    """A device NVML shows: a whole GPU, or a MIG device (``parent`` is its GPU's UUID)."""

    uuid: str
    key: str
    handle: Any
    name: str
    index: int  # NVML's index of the (parent) GPU
    parent: str | None = None
    names: dict[str, str] = field(default_factory=dict)  # field -> metric name, built once
    probes: list[Any] = field(default_factory=list)  # what is still asked of it (probes.Probe)
    dropped: list[str] = field(default_factory=list)  # fields it does not give, in drop order
    last_seen: int = 0  # NVML's timestamp of the newest per-process sample read
    visible: dict[int, bool] = field(default_factory=dict)  # PIDs NVML lists: visible from here?
    pid_names: dict[tuple[int, str], str] = field(default_factory=dict)

    def rename(self, key: str) -> None:
        self.key = key
        self.names = {f: metric(key, f) for f in FIELDS}
        self.pid_names.clear()

    def describe(self) -> dict[str, Any]:
        """What the run's config says about it."""
        out: dict[str, Any] = {"uuid": self.uuid, "name": self.name, "index": self.index}
        if self.parent is not None:
            out["parent"] = self.parent
        return out


def discover(nv: Any) -> tuple[list[Device], list[str]]:
    """Every device NVML shows now, and a note for each it showed but could not open. NVML's own
    failures (a lost GPU while counting) propagate: the caller backs off."""
    errors = errors_of(nv)
    devices: list[Device] = []
    notes: list[str] = []
    for index in range(nv.nvmlDeviceGetCount()):
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            uuid = text(nv.nvmlDeviceGetUUID(handle))
        except errors as e:  # e.g. a GPU of the host not given to this container
            notes.append(f"GPU {index}: {describe(e)}")
            continue
        devices.append(_device(nv, handle, uuid, index, None, errors))
        devices.extend(_mig_devices(nv, handle, uuid, index, errors, notes))
    _unique_keys(devices)
    return devices, notes


def _device(nv: Any, handle: Any, uuid: str, index: int, parent: str | None,
            errors: tuple[type[BaseException], ...]) -> Device:
    try:
        name = text(nv.nvmlDeviceGetName(handle))
    except errors:
        name = ""
    device = Device(uuid=uuid, key="", handle=handle, name=name, index=index, parent=parent)
    device.rename(gpu_key(uuid))
    return device


def _mig_devices(nv: Any, handle: Any, uuid: str, index: int,
                 errors: tuple[type[BaseException], ...], notes: list[str]) -> list[Device]:
    try:
        if nv.nvmlDeviceGetMigMode(handle)[0] != MIG_ENABLED:
            return []
        slots = nv.nvmlDeviceGetMaxMigDeviceCount(handle)
    except errors:  # not a MIG-capable GPU
        return []
    found = []
    for slot in range(slots):
        try:
            mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            mig_uuid = text(nv.nvmlDeviceGetUUID(mig))
        except errors as e:
            if classify(e) is not Trouble.NO_DATA:  # NotFound: an empty slot
                notes.append(f"GPU {index} MIG slot {slot}: {describe(e)}")
            continue
        found.append(_device(nv, mig, mig_uuid, index, uuid, errors))
    return found


def _unique_keys(devices: list[Device]) -> None:
    """Two devices whose short keys clash (8 hex digits of a UUID: rare) take their whole UUIDs."""
    seen: dict[str, int] = {}
    for d in devices:
        seen[d.key] = seen.get(d.key, 0) + 1
    for d in devices:
        if seen[d.key] > 1:
            digits = "".join(c for c in bare_uuid(d.uuid) if c in "0123456789abcdef")
            d.rename(f"{gpu_key(d.uuid)}-{digits[8:]}")
