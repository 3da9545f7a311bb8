"""Jinja rendering of the results section, strict about missing values.

Both environments use StrictUndefined: a template that asks for a value the analysis did not
provide fails with a UserError naming the template and the value, never a blank in the
text; printing a None directly fails the same way. The LaTeX templates use the line-statement-free delimiters ((* *)) and ((( ))) so
LaTeX's own braces need no escaping. Number formats live here as filters, so the Markdown
and LaTeX reports always print a number the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from ..analyze.conditions import condition_label
from ..analyze.tables import latex_escape
from ..errors import UserError

NONE_MARK = "—"


def number(value: float | None, digits: int = 1) -> str:
    """Thousands separators and fixed digits; None (not reported, not applicable) as a dash."""
    return NONE_MARK if value is None else f"{value:,.{digits}f}"


def signed(value: float | None, digits: int = 1) -> str:
    return NONE_MARK if value is None else f"{value:+,.{digits}f}"


def pvalue(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def interval(estimate: dict[str, float] | None, digits: int = 1, scale: float = 1.0) -> str:
    """'75.4 [70.7, 80.1]' from an Estimate dump."""
    if estimate is None:
        return NONE_MARK
    v, lo, hi = (scale * estimate[k] for k in ("value", "low", "high"))
    return f"{v:,.{digits}f} [{lo:,.{digits}f}, {hi:,.{digits}f}]"


def _refuse_none(value: Any) -> Any:
    """Printing None would hide a missing number; the templates must say what None means."""
    if value is None:
        raise jinja2.UndefinedError("a value is None where the template prints it directly (use the number filter, or say what is missing)")
    return value


FILTERS: dict[str, Callable[..., str]] = {
    "number": number, "signed": signed, "pvalue": pvalue, "interval": interval, "label": condition_label,
}


def environment(templates_dir: Path, *, latex: bool) -> jinja2.Environment:
    delimiters: dict[str, Any] = (
        {"block_start_string": "((*", "block_end_string": "*))", "variable_start_string": "(((", "variable_end_string": ")))",
         "comment_start_string": "((=", "comment_end_string": "=))"}
        if latex else {}
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir), undefined=jinja2.StrictUndefined, autoescape=False,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, finalize=_refuse_none, **delimiters,
    )
    env.filters.update(FILTERS)
    if latex:
        env.filters["tex"] = latex_escape
    return env


def render(templates_dir: Path, template: str, context: dict[str, Any]) -> str:
    """Render one template; a missing value or template is a UserError naming both."""
    env = environment(templates_dir, latex=template.endswith(".tex.j2"))
    path = Path(templates_dir) / template
    try:
        text = env.get_template(template).render(context)
    except jinja2.TemplateNotFound:
        raise UserError(f"{path}: template not found") from None
    except jinja2.UndefinedError as exc:
        raise UserError(f"{path}: the template needs a value the analysis does not provide ({exc.message}); "
                        "rerun the analyze stage, or fix the template") from None
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: template syntax error ({exc.message})") from None
    return text.rstrip() + "\n"
