"""Retrieval quality on a small labelled set: recall@5 per search mode, local wordllama.

Thirty short help-centre documents in ten topics and twelve questions written in other
words than the documents, each labelled with the documents that answer it. The floors
are modest (wordllama is a bag of token vectors): they catch a broken ranking, and
hybrid must not fall below the worse of the two modes it fuses.
"""

from __future__ import annotations

import statistics

from tests.conftest import Gateway

DOCUMENTS = {
    "refund-time": "Refunds are credited back to the original card within five business days.",
    "refund-how": "To request a refund, open the order and choose the return button.",
    "refund-partial": "Partial refunds are possible when only part of an order is sent back.",
    "invoice-email": "Invoices are emailed as PDF files on the first day of every month.",
    "invoice-vat": "Each invoice lists the VAT number and the tax charged per item.",
    "invoice-download": "Past invoices can be downloaded from the billing history page.",
    "password-reset": "Reset a forgotten password with the link sent to your email address.",
    "password-rules": "Passwords need twelve characters, including a digit and a symbol.",
    "password-lock": "After five wrong password attempts the account is locked for an hour.",
    "mfa-app": "Two-factor authentication works with any authenticator app on your phone.",
    "mfa-sms": "You can also receive your second-factor code by text message.",
    "mfa-recovery": "Recovery codes let you sign in when you lose the phone with the app.",
    "ship-time": "Parcels leave the warehouse within a day and arrive in three to five days.",
    "ship-track": "Track your parcel with the tracking number in the dispatch email.",
    "ship-abroad": "We ship to most countries in Europe; customs fees may apply abroad.",
    "plan-upgrade": "Upgrade your subscription plan at any time from the account settings.",
    "plan-cancel": "Cancel the subscription before renewal to avoid the next charge.",
    "plan-trial": "The free trial lasts fourteen days and needs no credit card.",
    "api-keys": "Create API keys in the developer console and keep them secret.",
    "api-limits": "The API allows one hundred requests per minute for each key.",
    "api-errors": "An error 429 from the API means you sent too many requests.",
    "privacy-data": "We store your personal data in data centres inside the European Union.",
    "privacy-delete": "Ask support to delete your account and all personal data.",
    "privacy-export": "Export a copy of your data as a zip archive from the privacy page.",
    "mobile-install": "Install the mobile app from the App Store or Google Play.",
    "mobile-offline": "The mobile app keeps recent documents available offline.",
    "mobile-notify": "Turn push notifications on or off in the app's settings.",
    "team-invite": "Invite colleagues to your team by email from the members page.",
    "team-roles": "Team owners can give members the admin or viewer role.",
    "team-remove": "Remove a member from the team on the members page.",
}
QUERIES = {
    "how long until my money comes back after a return": {"refund-time", "refund-partial"},
    "where can I find my old bills": {"invoice-download", "invoice-email"},
    "I forgot my password": {"password-reset"},
    "why is my account locked": {"password-lock"},
    "I lost the phone with my authenticator": {"mfa-recovery", "mfa-app"},
    "get the login code by SMS": {"mfa-sms"},
    "where is my parcel": {"ship-track", "ship-time"},
    "do you deliver to other countries": {"ship-abroad"},
    "stop my subscription from renewing": {"plan-cancel"},
    "too many requests error from the API": {"api-errors", "api-limits"},
    "remove all my personal information": {"privacy-delete", "privacy-export"},
    "add a coworker to my team": {"team-invite"},
}
FLOORS = {"vector": 0.6, "keyword": 0.6, "hybrid": 0.6}


async def _recall_at_5(gateway: Gateway, mode: str) -> float:
    recalls = []
    for query, relevant in QUERIES.items():
        response = await gateway.admin.post(
            "/v1/knowledge-bases/help/search", json={"query": query, "top_k": 5, "mode": mode}
        )
        assert response.status_code == 200, response.text
        found = {hit["id"] for hit in response.json()["data"]}
        recalls.append(len(found & relevant) / len(relevant))
    return statistics.fmean(recalls)


async def test_recall_at_5_per_mode(gateway: Gateway) -> None:
    model = {
        "id": "local-embed",
        "provider": "local",
        "model": "wordllama",
        "kind": "embedding",
        "dimensions": 256,
    }
    assert (await gateway.admin.post("/admin/models", json=model)).status_code == 201
    kb = {"id": "help", "name": "Help centre", "embedding_model_id": "local-embed"}
    assert (await gateway.admin.post("/admin/knowledge-bases", json=kb)).status_code == 201
    documents = [{"id": key, "content": text} for key, text in DOCUMENTS.items()]
    added = await gateway.admin.post(
        "/v1/knowledge-bases/help/documents", json={"documents": documents}
    )
    assert added.status_code == 200, added.text
    recall = {mode: await _recall_at_5(gateway, mode) for mode in FLOORS}
    print("recall@5:", ", ".join(f"{mode} {value:.3f}" for mode, value in recall.items()))
    for mode, floor in FLOORS.items():
        assert recall[mode] >= floor, recall
    assert recall["hybrid"] >= min(recall["vector"], recall["keyword"]), recall
