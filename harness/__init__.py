"""What the demo, the benchmark and the tests share: the embedded broker and stack, topic
watchers, the sample ledger and the sample policy. Product code never imports it."""

from pathlib import Path

SAMPLE_POLICY = Path(__file__).resolve().parent / "samples" / "policy.yaml"
