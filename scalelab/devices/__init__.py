"""Device profiles (YAML data shipped in ``profiles/``), their loader, and calibration."""

from scalelab.devices.profile import DeviceProfile, load_profile, parse_profile, profile_names

__all__ = ["DeviceProfile", "load_profile", "parse_profile", "profile_names"]
