"""prom.py - /metrics scraped and parsed with Debian's python3-prometheus-client (the text format
0.0.4 parser Prometheus itself follows), and look-ups over the samples."""

from prometheus_client.parser import text_string_to_metric_families

from sqtest.http import request
from sqtest.proc import check

CONTENT_TYPE = "text/plain; version=0.0.4"


class Scrape:
    """One /metrics answer: the raw text, the parsed families, and every sample."""

    def __init__(self, text):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def names(self):
        """Every sample name (counters with _total, histograms with _bucket/_sum/_count)."""
        return {s.name for s in self.samples}

    def series(self, name, **labels):
        return [s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name, **labels):
        """The one sample of name with exactly these labels (+ any others matching); fails when absent."""
        got = self.series(name, **labels)
        check(len(got) == 1, "%d samples %s%r in /metrics, want 1" % (len(got), name, labels))
        return got[0].value

    def total(self, name, **labels):
        """The sum over every series of name whose labels include these (0 when there is none)."""
        return sum(s.value for s in self.series(name, **labels))


def scrape(port, path="/metrics"):
    r = request(port, "GET", path)
    check(r.status == 200, "GET %s answered %r" % (path, r))
    ctype = r.header("Content-Type") or ""
    check(ctype.startswith(CONTENT_TYPE), "GET %s Content-Type %r, want %s" % (path, ctype, CONTENT_TYPE))
    return Scrape(r.body.decode("utf-8"))
