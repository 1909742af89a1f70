"""Why a profile, tag or segment request was refused: a stable code, an HTTP status and a
message in both languages (as loyalty's errors)."""

from __future__ import annotations


class SegmentError(ValueError):
    """A refused request. `code` is stable; `status` is the HTTP status to answer; the message
    is English, `zh` the same in Chinese; `problems` lists a bad rule's problems by path."""

    def __init__(
        self,
        code: str,
        message: str,
        zh: str,
        status: int = 409,
        problems: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.zh = zh
        self.status = status
        self.problems = problems

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": str(self), "zh": self.zh}
        if self.problems is not None:
            out["problems"] = self.problems
        return out


def unknown_segment(name: str) -> SegmentError:
    return SegmentError(
        "unknown_segment",
        f"no segment named {name!r}: see `liucun segments list`",
        f"没有名为 {name!r} 的分群",
        status=404,
    )


def bad_user_id(limit: int) -> SegmentError:
    return SegmentError(
        "bad_user_id",
        f"user ids are 1–{limit} characters without surrounding spaces",
        f"用户 ID 须为 1–{limit} 个字符,且首尾不能有空格",
        status=422,
    )
