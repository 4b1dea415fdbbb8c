"""OpenSLO v1 import and export.

`export_openslo(spec)` writes a slokit spec as OpenSLO v1 Service, SLI and SLO documents;
`import_openslo(text)` reads OpenSLO v1 documents into `slokit/v1` YAML. Both return
notes: one sentence per thing that did not map. An export imports back to the same
SLOs. The mapping, and what does not map, is in docs/openslo.md.
"""

from slokit.spec.openslo_export import export_openslo
from slokit.spec.openslo_import import import_openslo

__all__ = ["export_openslo", "import_openslo"]
