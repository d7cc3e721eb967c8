"""What the GPU scripts share: JSON reports that strict parsers read (no NaN or Infinity literals)."""
import json
import math
import os


def clean(value):
    """`value` with every non-finite float replaced by its text, through dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write_report(folder, name, report):
    """Writes `report` as folder/name, whole or not at all (through a temporary file renamed into place)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path + ".tmp", "w") as handle:
        json.dump(clean(report), handle, indent=1, default=str)
    os.replace(path + ".tmp", path)
