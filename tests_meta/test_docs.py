"""The README stays true: every threshold key and every inventory component is documented."""

from pathlib import Path

from opscheck.checks import CHECKS
from opscheck.config import COMPONENTS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_threshold_key_is_documented():
    missing = [key for key in CHECKS if f"`{key}`" not in README and f"{key}`" not in README]
    assert not missing, f"README lacks threshold keys: {missing}"


def test_every_component_has_an_inventory_section():
    missing = [c for c in COMPONENTS if f"[[{c}]]" not in README]
    assert not missing, f"README lacks [[component]] sections: {missing}"
