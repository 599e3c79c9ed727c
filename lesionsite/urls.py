from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from classifier import two_factor_pages
from classifier.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Browsers and bookmark tools ask for /favicon.ico whatever the page links to.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.ico"), permanent=True)),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Two-factor sign-in: the code step after the password, and setting it up (classifier.two_factor).
    path("login/code/", two_factor_pages.code_step, name="two-factor-code"),
    path("account/two-factor/", two_factor_pages.manage, name="two-factor"),
    # Self-service change, and the one-time link an administrator sends (manage.py send_password_reset):
    # there is no public "forgot password" form.
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(template_name="registration/password_change.html"),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="registration/password_changed.html"),
        name="password_change_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(template_name="registration/password_set.html"),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="registration/password_set_done.html"),
        name="password_reset_complete",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("classifier.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script as a file: the page keeps to script-src 'self' (the CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("classifier.urls")),
]
