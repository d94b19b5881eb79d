"""Notifications (issue 16): events -> in-app rows, live streams, email and Expo push.

- kinds.py: what each event becomes, the kinds and their default channels
- service.py: the consumer's batch handler and what users read and set
- live.py: `GET /notifications/stream` over PostgreSQL LISTEN/NOTIFY
- delivery.py: the email / push worker over the `notification_deliveries` table
- consumer.py: the batch consumer (queue `community_service.notifications`) and the start/stop hooks
"""
