"""Outbound ticket webhooks: signed JSON POSTs to `SWITCHBOARD_TICKET_WEBHOOK_URL`.

`payload` builds the JSON, `signing` signs it (and holds the receiver's check),
`delivery` queues and POSTs it in the background with retries.
"""
