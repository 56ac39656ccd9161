"""The Avro contract of the platform: one ``.avsc`` per event type, the versioned registry file,
the Confluent wire-format codec and the line-per-event JSON form integrators use."""
