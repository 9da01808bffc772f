"""The hook other apps call to tell the notification rules something happened.

The blocklists app (jails.blocklists) sends ``blocklist_import_failed`` when an import fails:

    from jails.notifications.signals import blocklist_import_failed
    blocklist_import_failed.send(sender=None, blocklist=name, error=short_reason)

The receiver only stores the event (one small INSERT, fine inside a request or a job); the
"blocklist import failing" rules read it on their next run and message from the job runner.
``error`` should be a short reason: credentials in URLs and paths on this host are removed
anyway before it reaches a message.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal, receiver

blocklist_import_failed = Signal()  # kwargs: blocklist (its name), error (a short reason)


@receiver(blocklist_import_failed, dispatch_uid="notifications-blocklist-import-failed")
def _blocklist_import_failed(sender: Any, *, blocklist: str, error: str, **kwargs: Any) -> None:
    from jails.notifications.services.rules import blocklist_failure_record

    blocklist_failure_record(blocklist=blocklist, error=error)
