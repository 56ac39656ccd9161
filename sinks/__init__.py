"""Sinks: the channel side. They consume dunning actions and deliver them.

``channels.ChannelSink`` is the entry point: it renders an action with ``render``,
sends e-mail through an ``email.EmailSender`` and remembers every send in the
``outbox`` table, so a redelivered action never reaches a debtor twice.
"""
