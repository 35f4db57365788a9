"""The curator's workspace navigation: one list of sections, each shown once its page exists."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()

# (URL name in the ``frontend`` namespace, label). A section whose URL is not
# configured is left out, so the navigation never links to a missing page.
SECTIONS = [
    ("project-settings", "Set-up"),
    ("project-import", "Import"),
    ("project-members", "Members"),
    ("item-list", "Items"),
    ("job-list", "Jobs"),
    ("quality", "Quality"),
    ("dataset-list", "Datasets"),
    ("webhook-list", "Webhooks"),
]


@register.inclusion_tag("frontend/workspace/nav.html")
def workspace_nav(project, active: str = ""):
    """Links to the project's workspace sections; ``active`` is the current section's URL name."""
    links = []
    for name, label in SECTIONS:
        try:
            url = reverse(f"frontend:{name}", kwargs={"project_id": project.id})
        except NoReverseMatch:
            continue
        links.append({"url": url, "label": label, "active": name == active})
    return {"project": project, "links": links}
