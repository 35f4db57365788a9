from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="frontend/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("onboarding/", views.onboarding, name="onboarding"),
    path("profile/", views.profile, name="profile"),
    path("projects/<int:project_id>/label/", views.label, name="label"),
    path("projects/<int:project_id>/label/next/", views.label_next, name="label-next"),
    path(
        "projects/<int:project_id>/label/<int:assignment_id>/submit/",
        views.label_submit,
        name="label-submit",
    ),
    path(
        "projects/<int:project_id>/label/<int:assignment_id>/ahead/",
        views.label_ahead,
        name="label-ahead",
    ),
    path(
        "projects/<int:project_id>/label/<int:assignment_id>/skip/",
        views.label_skip,
        name="label-skip",
    ),
    path("projects/<int:project_id>/items/", views.item_list, name="item-list"),
    path("projects/<int:project_id>/items/<int:item_id>/", views.item_detail, name="item-detail"),
]
