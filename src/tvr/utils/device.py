"""``--device``: one check for every command that takes it, before anything is loaded."""

from __future__ import annotations


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have, in one line naming it and the fix (``None``: the command's
    default, CUDA when available, is always fine).

    Raises:
        ValueError: not a torch device name, or a CUDA / MPS device torch cannot see here.
    """
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r} is not a device name torch knows: give cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}: torch sees no CUDA GPU on this machine (torch.cuda.is_available() "
                             "is False); use --device cpu, or leave --device out (a GPU is used when there is one)")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"--device {device}: torch sees {count} CUDA GPU(s) here (cuda:0 to cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine; use --device cpu")


__all__ = ["check_device"]
