"""The Colab simulation's `google.colab.drive`: mounting fails loudly. On Colab, `mount` opens a
Google sign-in and waits for the reader, so "Run all" stops there; the book may mount Drive only
in a cell the reader opts into."""


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120_000,
          readonly: bool = False) -> None:
    raise RuntimeError(f"google.colab.drive.mount({mountpoint!r}) was called: on Colab it waits "
                       "for the reader to sign in to Google Drive, so 'Run all' stops there. "
                       "Mount Drive only inside a cell the reader opts into.")
