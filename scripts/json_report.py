"""What the GPU scripts share: JSON reports that strict parsers read (no NaN or Infinity literals)."""
import math


def clean(value):
    """`value` with every non-finite float replaced by its text, through dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
