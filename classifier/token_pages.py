"""The account page of API tokens: the user's tokens with their last use, a new one (its key shown
once), and revoking one or all."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from classifier.forms import ApiTokenForm
from classifier.tokens import ApiToken


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    form, issued, status = ApiTokenForm(), None, 200
    if request.method == "POST":
        change = request.POST.get("change")
        if change == "issue":
            form = ApiTokenForm(request.POST)
            if form.is_valid():
                # Shown in this answer only (pages are no-store): a redirect would have to keep the key somewhere.
                token, key = ApiToken.objects.issue(request.user, name=form.cleaned_data["name"])
                issued, form = {"token": token, "key": key}, ApiTokenForm()
            else:
                status = 400
        elif change == "revoke":
            chosen = request.POST.get("token", "")
            if not chosen.isdigit():
                raise Http404("No such token.")
            token = get_object_or_404(ApiToken.objects.filter(user=request.user), pk=chosen)
            token.delete()
            messages.success(request, f"Revoked {token.name or 'the token'} (created {token.created:%Y-%m-%d %H:%M}).")
            return redirect("classifier:api-tokens")
        elif change == "revoke-all":
            count = ApiToken.objects.revoke_all(request.user)
            messages.success(request, f"Revoked all your API tokens ({count}).")
            return redirect("classifier:api-tokens")
        else:
            status = 400
            messages.error(request, "Nothing was changed: choose to issue or revoke a token.")
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created")
    context = {"tokens": tokens, "form": form, "issued": issued}
    return render(request, "classifier/api_tokens.html", context, status=status)
