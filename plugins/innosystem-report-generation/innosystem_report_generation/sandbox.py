"""Compiling and rendering report templates in a restricted Jinja2 sandbox.

Imported lazily (it imports Jinja2): by the input model's validator, to compile a template at
submit time, and by the worker. The rules are listed in README.md ("The sandbox"); in short:

* :class:`jinja2.sandbox.SandboxedEnvironment` (no ``_private``/dunder attributes, no internal
  attributes of functions, frames, generators, ...), ``StrictUndefined``, autoescape off;
* on ``str``, ``dict`` and ``list`` values only a whitelist of non-mutating methods that cannot
  grow a value (no ``format``, ``join``, ``replace``, ``center``, ``append``, ...);
* a whitelist of filters, some with capped arguments, plus ``cell``, ``plain`` and ``number``;
  globals ``range`` (at most 100,000 items), ``dict``, ``namespace``, ``cycler``, ``joiner``;
* no ``include``, ``import``, ``from`` or ``extends`` (there is no template loader);
* growth limits: every string a template builds (``~``, ``+``, ``*``, ``%``, filters, macro and
  call results, captured blocks) is at most :data:`MAX_VALUE_CHARS`, lists at most
  :data:`MAX_LIST_ITEMS`; numbers at most :data:`MAX_INT_BITS` bits; the total of all strings and
  lists built is at most :data:`MAX_WORK`; the output is at most ``max_chars``;
* a time budget, checked on every template line and every Python call while rendering.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.filters import FILTERS, make_attrgetter, sync_do_slice
from jinja2.sandbox import SandboxedEnvironment

from innosystem_report_generation.markup import escape_cell, escape_plain, one_line

__all__ = [
    "MAX_INT_BITS",
    "MAX_LIST_ITEMS",
    "MAX_VALUE_CHARS",
    "MAX_WORK",
    "RenderError",
    "TemplateCompileError",
    "compile_template",
    "render",
]

#: Longest string a template may build (also the default output limit).
MAX_VALUE_CHARS = 500_000
#: Longest list a template may build with ``+``, ``*`` or a filter.
MAX_LIST_ITEMS = 1_000_000
#: Largest integer (in bits) that ``*`` and ``**`` may produce (about 1,200 decimal digits).
MAX_INT_BITS = 4_000
#: Characters and list items a render may build in all (strings and lists made by operators,
#: filters, calls, and the output itself): bounds the memory and work of pathological templates.
MAX_WORK = 50_000_000
#: Largest width for ``center``/``indent`` and count for ``batch``/``slice``.
MAX_FILTER_WIDTH = 1_000
#: Largest width or precision in a ``%`` format (``"%10.2f"``).
MAX_FORMAT_WIDTH = 100

_TEMPLATE_FILENAME = "<template>"

_STR_METHODS = frozenset(
    "capitalize casefold count endswith find index isalnum isalpha isdecimal isdigit islower "
    "isnumeric isspace istitle isupper lower lstrip partition removeprefix removesuffix rfind "
    "rindex rpartition rsplit rstrip split splitlines startswith strip swapcase title "
    "upper".split()
)
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQ_METHODS = frozenset({"count", "index"})
_NUMBER_ATTRS = frozenset({"real", "imag", "is_integer"})


class TemplateCompileError(ValueError):
    """The template cannot be compiled: the message says why (and where)."""


class RenderError(Exception):
    """Rendering failed; ``kind`` is ``"unsafe"``, ``"limit"`` or ``"error"``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _LimitExceeded(SecurityError):
    """A growth or time limit of the sandbox was hit (never caught by template code)."""


# --- per-render state --------------------------------------------------------------------------
class _Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.work = 0

    def add(self, amount: int) -> None:
        self.work += amount
        if self.work > MAX_WORK:
            raise _LimitExceeded(
                f"the template built more than {MAX_WORK:,} characters and list items in all"
            )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"rendering took longer than {self.seconds:g} s")


_state = threading.local()


def _budget() -> _Budget | None:
    return getattr(_state, "budget", None)


def _checked(value: Any) -> Any:
    """Refuse a value the template built if it is too big; count it towards the work limit."""
    if isinstance(value, str):
        size = len(value)
        if size > MAX_VALUE_CHARS:
            raise _LimitExceeded(
                f"the template built a string of {size:,} characters; the limit is "
                f"{MAX_VALUE_CHARS:,}"
            )
    elif isinstance(value, (list, tuple)):
        size = len(value)
        if size > MAX_LIST_ITEMS:
            raise _LimitExceeded(
                f"the template built a list of {size:,} items; the limit is {MAX_LIST_ITEMS:,}"
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise _LimitExceeded(f"the template built a number larger than 2**{MAX_INT_BITS}")
        return value
    else:
        return value
    budget = _budget()
    if budget is not None:
        budget.add(size)
    return value


def _checked_join(parts: Iterator[Any] | list[Any] | tuple[Any, ...], sep: str = "") -> str:
    strings = [p if isinstance(p, str) else str(p) for p in parts]
    total = sum(map(len, strings)) + len(sep) * max(0, len(strings) - 1)
    if total > MAX_VALUE_CHARS:
        raise _LimitExceeded(
            f"the template built a string of {total:,} characters; the limit is {MAX_VALUE_CHARS:,}"
        )
    return _checked(sep.join(strings))


# --- ``%`` formatting with capped widths -------------------------------------------------------
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)


def _safe_percent(fmt: str, args: Any) -> str:
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                raise SecurityError("'*' widths are not allowed in % formats")
            if number and int(number) > MAX_FORMAT_WIDTH:
                raise _LimitExceeded(
                    f"a % format width or precision is larger than {MAX_FORMAT_WIDTH}"
                )
    return _checked(fmt % args)


# --- filters -----------------------------------------------------------------------------------
def _cap(name: str, value: Any, limit: int = MAX_FILTER_WIDTH) -> None:
    size = len(value) if isinstance(value, str) else value
    if isinstance(size, int) and size > limit:
        raise _LimitExceeded(f"{name} is larger than {limit}")


def _f_center(value: Any, width: int = 80) -> str:
    _cap("center width", width)
    return FILTERS["center"](value, width)


def _f_indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _cap("indent width", width, 100)
    return FILTERS["indent"](s, width, first, blank)


def _f_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _cap("batch size", linecount)
    return FILTERS["batch"](value, linecount, fill_with)


def _f_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _cap("slice count", slices)
    return sync_do_slice(value, slices, fill_with)


@jinja2.pass_environment
def _f_wordwrap(
    env: jinja2.Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    if wrapstring is not None:
        _cap("wordwrap wrapstring", str(wrapstring), 10)
    if int(width) < 1:
        raise jinja2.exceptions.FilterArgumentError("wordwrap: width must be at least 1")
    return FILTERS["wordwrap"](env, s, width, break_long_words, wrapstring, break_on_hyphens)


def _f_format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise jinja2.exceptions.FilterArgumentError(
            "can't handle positional and keyword arguments at the same time"
        )
    return _safe_percent(str(value), kwargs or args)


def _f_replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    hits = text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * (len(new) - len(old)) > MAX_VALUE_CHARS:
        raise _LimitExceeded(f"replace would build more than {MAX_VALUE_CHARS:,} characters")
    return text.replace(old, new, -1 if count is None else count)


@jinja2.pass_environment
def _f_join(env: jinja2.Environment, value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(env, attribute), value)
    return _checked_join(list(value), str(d))


def _f_number(value: Any, decimals: int | None = None, sep: str = ",") -> str:
    """``1234567.891|number(2)`` -> ``1,234,567.89``; ``number`` alone keeps integers whole and
    shows floats with up to 6 decimals (trailing zeros dropped). ``sep`` is the thousands
    separator (``""`` for none). Anything but a number (text included) is printed as it is."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if decimals is not None and not 0 <= int(decimals) <= 20:
        raise jinja2.exceptions.FilterArgumentError("number: decimals must be 0..20")
    if decimals is None:
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.6f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:,.{int(decimals)}f}"
    return text if sep == "," else text.replace(",", str(sep)[:3])


def _size_checked(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps jinja_pass_arg (pass_environment, pass_eval_context, ...)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _checked(func(*args, **kwargs))

    return wrapper


_PLAIN_FILTERS = (
    "abs attr capitalize count d default dictsort filesizeformat first float groupby int items "
    "last length list lower map max min reject rejectattr reverse round select selectattr sort "
    "string sum title trim truncate unique upper wordcount"
).split()

_FILTERS: dict[str, Callable[..., Any]] = {
    **{name: FILTERS[name] for name in _PLAIN_FILTERS},
    "batch": _f_batch,
    "center": _f_center,
    "format": _f_format,
    "indent": _f_indent,
    "join": _f_join,
    "replace": _f_replace,
    "slice": _f_slice,
    "wordwrap": _f_wordwrap,
    "cell": escape_cell,
    "plain": escape_plain,
    "oneline": one_line,
    "number": _f_number,
}
#: The filters a template may use (documented in README.md), each with its result size-checked.
ALLOWED_FILTERS = {name: _size_checked(func) for name, func in sorted(_FILTERS.items())}


# --- the environment ---------------------------------------------------------------------------
class _CodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join instead of Jinja's plain ``str_join``."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class ReportEnvironment(SandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            optimized=False,  # no constant folding: nothing of a template runs at compile time
            extensions=["jinja2.ext.loopcontrols"],
            cache_size=0,
        )
        self.filters = dict(ALLOWED_FILTERS)
        self.globals.pop("lipsum", None)  # can generate large random text; not needed
        self.concat = _checked_join  # type: ignore[assignment]  # block set, macros, call blocks

    # ``~`` (see _CodeGenerator)
    @staticmethod
    def checked_join(parts: tuple[Any, ...]) -> str:
        return _checked_join(parts)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, dict):
            return attr in _DICT_METHODS
        if isinstance(obj, (list, tuple)):  # named tuples (groupby's groups) keep their fields
            return attr in _SEQ_METHODS or attr in getattr(type(obj), "_fields", ())
        if isinstance(obj, (int, float)):
            return attr in _NUMBER_ATTRS
        return True  # Jinja's own objects: loop, cycler, joiner, namespace, macros

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format / format_map are simply not allowed (see _STR_METHODS)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # JSON data: ``data.items`` is the key "items" when there is one, not dict.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "%" and isinstance(left, str):
            return _safe_percent(left, right)
        if op == "*":
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                if len(seq) * max(times, 0) > (
                    MAX_VALUE_CHARS if isinstance(seq, str) else MAX_LIST_ITEMS
                ):
                    raise _LimitExceeded("'*' would build a value over the size limit")
            elif isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                    raise _LimitExceeded(f"'*' would build a number larger than 2**{MAX_INT_BITS}")
        elif op == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right > 0 and (left.bit_length() - 1) * right > MAX_INT_BITS:
                raise _LimitExceeded(f"'**' would build a number larger than 2**{MAX_INT_BITS}")
        elif op == "+":
            if isinstance(left, str) and isinstance(right, str):
                if len(left) + len(right) > MAX_VALUE_CHARS:
                    raise _LimitExceeded("'+' would build a string over the size limit")
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                if len(left) + len(right) > MAX_LIST_ITEMS:
                    raise _LimitExceeded("'+' would build a list over the size limit")
        return _checked(self.binop_table[op](left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        return _checked(super().call(__context, __obj, *args, **kwargs))


@functools.cache
def _environment() -> ReportEnvironment:
    return ReportEnvironment()


# --- compiling ---------------------------------------------------------------------------------
_FORBIDDEN_NODES = (
    (nodes.Include, "include"),
    (nodes.Import, "import"),
    (nodes.FromImport, "from ... import"),
    (nodes.Extends, "extends"),
)


def compile_template(source: str) -> jinja2.Template:
    """Parse and compile ``source``; :class:`TemplateCompileError` says what is wrong."""
    env = _environment()
    try:
        ast = env.parse(source)
        for node_type, tag in _FORBIDDEN_NODES:
            found = next(iter(ast.find_all(node_type)), None)
            if found is not None:
                raise TemplateCompileError(
                    f"line {found.lineno}: '{tag}' is not supported (templates are self-contained)"
                )
        code = env.compile(ast, filename=_TEMPLATE_FILENAME)
        return env.template_class.from_code(env, code, env.make_globals(None), None)
    except TemplateSyntaxError as exc:
        raise TemplateCompileError(f"syntax error at line {exc.lineno}: {exc.message}") from None
    except (RecursionError, MemoryError):
        raise TemplateCompileError("is nested too deeply to compile") from None
    except TemplateCompileError:
        raise
    except SyntaxError as exc:  # Python's own limits on the generated code (nested blocks)
        raise TemplateCompileError(f"is nested too deeply to compile ({exc.msg})") from None
    except Exception as exc:
        raise TemplateCompileError(f"cannot be compiled: {type(exc).__name__}: {exc}") from None


# --- rendering ---------------------------------------------------------------------------------
def _template_line(exc: BaseException) -> int | None:
    """The template line an exception came from (Jinja rewrites tracebacks to template lines)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(
    template: jinja2.Template, variables: dict[str, Any], *, max_chars: int, seconds: float
) -> str:
    """Render with the sandbox's limits; every failure is a :class:`RenderError`."""
    budget = _Budget(seconds)

    def line_tracer(frame: Any, event: str, arg: Any) -> Any:
        budget.check_time()
        return line_tracer

    def call_tracer(frame: Any, event: str, arg: Any) -> Any:
        budget.check_time()
        if frame.f_code.co_filename == _TEMPLATE_FILENAME:
            return line_tracer
        return None

    chunks: list[str] = []
    size = 0
    previous_trace = sys.gettrace()
    _state.budget = budget
    sys.settrace(call_tracer)
    try:
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > max_chars:
                raise _LimitExceeded(f"the rendered text is longer than {max_chars:,} characters")
            budget.add(len(chunk))
            chunks.append(chunk)
        budget.check_time()  # in case a tracer was switched off by an error inside the render
    except _LimitExceeded as exc:
        raise RenderError("limit", f"template exceeded a limit: {exc}") from None
    except SecurityError as exc:
        where = _template_line(exc)
        at = f" (line {where})" if where else ""
        if "attribute" in str(exc):
            message = f"template tried to access an unsafe attribute{at}: {_short(exc)}"
        else:
            message = f"template was refused by the sandbox{at}: {_short(exc)}"
        raise RenderError("unsafe", message) from None
    except RecursionError:
        raise RenderError("limit", "template recursion is too deep") from None
    except MemoryError:
        raise RenderError("limit", "template ran out of memory") from None
    except TemplateError as exc:
        where = _template_line(exc)
        at = f" at line {where}" if where else ""
        raise RenderError("error", f"template error{at}: {_short(exc)}") from None
    except Exception as exc:
        where = _template_line(exc)
        at = f" at line {where}" if where else ""
        raise RenderError(
            "error", f"template error{at}: {type(exc).__name__}: {_short(exc)}"
        ) from None
    finally:
        sys.settrace(previous_trace)
        _state.budget = None
    return "".join(chunks)
