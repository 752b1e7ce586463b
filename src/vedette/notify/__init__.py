"""Notifications out of the centre: webhook, email and syslog/CEF channels fed by an outbox.

``channel_config`` checks a channel's settings; ``webhook``, ``email`` and ``syslog_out`` each
send one delivery; ``sender`` picks the channel and wraps the payload; ``dispatcher`` is the
thread that claims due outbox rows, sends them and records the outcome.
"""
