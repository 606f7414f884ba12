"""Device profiles: YAML data shipped in ``profiles/``, their loader, and the synthetic networks
calibration times. Nothing here imports ``scalelab.analysis``: measuring a device and fitting a
profile (``scalelab.analysis.calibrate``, ``latency_fit``) and the roofline that reads a profile
(``scalelab.analysis.latency``) are analysis."""

from scalelab.devices.profile import DeviceProfile, load_profile, parse_profile, profile_names

__all__ = ["DeviceProfile", "load_profile", "parse_profile", "profile_names"]
