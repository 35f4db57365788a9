from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.errors import NotFound
from annotation.services import token_create
from annotation.services.projects import user_by_username


class Command(BaseCommand):
    help = "Create an API token for a user and print it (it is stored hashed and shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, username: str, name: str, **options):
        try:
            user = user_by_username(username)
        except NotFound as exc:
            raise CommandError(exc.detail)
        _, raw = token_create(user=user, name=name)
        self.stdout.write(raw)
