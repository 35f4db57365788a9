from __future__ import annotations

from django.core.management.base import BaseCommand

from curation.webhooks.services import deliveries_resume


class Command(BaseCommand):
    help = (
        "Send again the webhook deliveries whose next attempt is overdue (their process or "
        "broker message was lost). Safe to run at any time, e.g. from cron every few minutes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--overdue-seconds",
            type=float,
            default=60.0,
            help="only deliveries at least this late (default 60)",
        )

    def handle(self, *args, overdue_seconds: float, **options):
        count = deliveries_resume(overdue_seconds=overdue_seconds)
        self.stdout.write(
            f"{count} overdue webhook deliver{'y' if count == 1 else 'ies'} scheduled"
        )
