"""Why a loyalty request was refused: a stable code, an HTTP status and a message in both
languages, so that the mini-program can show the user what to do."""

from __future__ import annotations


class LoyaltyError(ValueError):
    """A refused loyalty request. `code` is stable (clients branch on it); `status` is the HTTP
    status to answer; the message is English, `zh` the same in Chinese."""

    def __init__(self, code: str, message: str, zh: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.zh = zh
        self.status = status

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": str(self), "zh": self.zh}


def not_found(what: str, name: str, zh_what: str) -> LoyaltyError:
    return LoyaltyError(
        f"unknown_{what.replace(' ', '_')}",
        f"no {what} named {name!r} in the playbook in force",
        f"当前运营手册中没有名为 {name!r} 的{zh_what}",
        status=404,
    )
