"""Studies: the library's experiments as plain functions. Each takes typed options (:mod:`lth.options`) and Python
objects (a preset or a :class:`~lth.spec.TrainSpec`, a model class, a ticket as tensors), plans a graph of run
nodes, runs it on an executor (:mod:`lth.studies.runtime`) and returns a result object that turns into a pandas
DataFrame and into the CLI's JSON document. The command line (:mod:`lth.cli`) and the Python API (:mod:`lth.api`)
are two faces over them; nothing here imports either."""
