"""python manage.py demo_admin: create (or update) the local demo staff account and print how to log in."""
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the demo admin (DEMO_ADMIN_USERNAME / DEMO_ADMIN_PASSWORD) and the demo member's API token."

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "navigator-local")
        admin, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        member, _ = User.objects.get_or_create(username="demo")
        token, _ = Token.objects.get_or_create(user=member)
        self.stdout.write(f"Admin login: {username} / {password}")
        self.stdout.write(f"Demo member 'demo' API token: {token.key}")
