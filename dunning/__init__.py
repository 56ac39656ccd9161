"""Commands and runtime: configuration, the embedded broker, Kafka clients, demo, bench."""
