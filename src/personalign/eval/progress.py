"""Rich progress bars for an evaluation run: users finished and (user, method) pairs finished."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    """Bars for users, (user, method) pairs and the optimization rounds of the current method
    (in-process runs), with the user being worked on; a no-op when ``enabled`` is false."""

    def __init__(self, *, enabled: bool, n_users: int, n_pairs: int, done_pairs: int = 0) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._n_users, self._n_pairs, self._done_pairs = n_users, n_pairs, done_pairs

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
            )
            self._progress.__enter__()
            self._users = self._progress.add_task("users", total=self._n_users, status="")
            self._pairs = self._progress.add_task(
                "user × method", total=self._n_pairs, completed=self._done_pairs, status=""
            )
            self._rounds = self._progress.add_task("rounds", total=1, status="", visible=False)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def users_done(self, n: int) -> None:
        if self._progress is not None and n:
            self._progress.advance(self._users, n)

    def current(self, user_id: str) -> None:
        if self._progress is not None:
            self._progress.update(self._users, status=f"user {user_id}")

    def round_done(self, method: str, r: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(
                self._rounds, total=total, completed=r, visible=True, status=f"{method} round {r}/{total}"
            )

    def pair_done(self, user_id: str, method: str) -> None:
        if self._progress is not None:
            self._progress.advance(self._pairs, 1)
            self._progress.update(self._pairs, status=f"{method} on {user_id} done")
