"""Q-Block (RFC 9177) at a signal server's DTLS transport, for Prometheus: bodies and blocks moved, blocks sent
again on request, the Q-Block layer's own answers (2.31, 4.08, refusals) and the bodies given up."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from opendots.transport.qblock_server import QBlockServer


def qblock_metrics(qblock: QBlockServer) -> Iterator[Metric]:
    counts = qblock.counts
    bodies = CounterMetricFamily(
        "opendots_qblock_bodies",
        "Bodies moved with Q-Block: received whole in Q-Block1 requests, sent as Q-Block2 responses.",
        labels=["direction"],
    )
    bodies.add_metric(["received"], counts["q1_bodies"])
    bodies.add_metric(["sent"], counts["q2_bodies"])
    blocks = CounterMetricFamily(
        "opendots_qblock_blocks",
        "Q-Block payloads: received (Q-Block1, duplicates included), sent (Q-Block2), of those sent, resent at a"
        " client's request for missing blocks, and CON ones the client answered with RST (the rest of that body is"
        " then not sent).",
        labels=["kind"],
    )
    blocks.add_metric(["received"], counts["q1_blocks"])
    blocks.add_metric(["sent"], counts["q2_blocks"])
    blocks.add_metric(["resent"], counts["q2_blocks_resent"])
    blocks.add_metric(["reset"], counts["q2_blocks_reset"])
    responses = CounterMetricFamily(
        "opendots_qblock_responses",
        "Responses of the Q-Block layer itself by code: 2.31 Continue, 4.08 (missing blocks listed, or a body given"
        " up), and refusals (4.00, 4.02, 4.13, 5.03).",
        labels=["code"],
    )
    for code, count in sorted(qblock.responses_sent.items()):
        responses.add_metric([code], count)
    abandoned = CounterMetricFamily(
        "opendots_qblock_bodies_abandoned",
        "Q-Block1 bodies given up unfinished: expired (NON_PARTIAL_TIMEOUT without progress), unanswered"
        " (NON_MAX_RETRANSMIT requests for missing blocks in vain), evicted (the peer started too many), reset (the"
        " client answered a 4.08 with RST: it forgot the body, RFC 9177 §4.3).",
        labels=["reason"],
    )
    for reason, count in sorted(qblock.abandoned.items()):
        abandoned.add_metric([reason], count)
    in_progress = GaugeMetricFamily(
        "opendots_qblock_bodies_in_progress",
        "Q-Block1 bodies being received, and Q-Block2 bodies kept for requests for missing blocks.",
        labels=["state"],
    )
    in_progress.add_metric(["receiving"], len(qblock.receiver))
    in_progress.add_metric(["kept"], len(qblock.responses))
    yield from (bodies, blocks, responses, abandoned, in_progress)


__all__ = ["qblock_metrics"]
