from __future__ import annotations

from django.core.management.base import BaseCommand

from annotation.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo project, its items and the demo logins (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=30)

    def handle(self, *args, items: int, **options):
        project, logins = demo_seed(items=items)
        self.stdout.write(self.style.SUCCESS(f"Demo project #{project.id}: {project.name}"))
        for username, password in logins.items():
            self.stdout.write(f"  login {username:<11} password {password}")
