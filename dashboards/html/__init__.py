"""dashboards.html: the committed Grafana boards drawn from one run's Prometheus, no Grafana.

`raftmon demo` and every `raftmon lab` run call `write(...)` before their Prometheus stops;
`python -m dashboards.html` draws one for any Prometheus and cluster label. Modules, in the
order data flows: grafana (variables, intervals, legends as Grafana computes them), fetch
(the queries), frames (Prometheus answers reshaped as Grafana's datasource and
transformations would), page (the self-contained HTML), render.js + page.css (drawing, with
uPlot), chromium (headless screenshots and DOM dumps, for `make screenshot` and the tests).
"""

from dashboards.html.page import FILENAME, RunEvent, collect, render, write

__all__ = ["FILENAME", "RunEvent", "collect", "render", "write"]
