"""Reference replication of "Agents Learn Their Runtime" (arXiv 2603.01209).

Subpackages follow the pipeline's data flow: tasks -> runtime -> agent -> policies ->
training -> evaluate -> analyze -> report. Lower layers know nothing of higher ones.
"""

__version__ = "0.1.0"
