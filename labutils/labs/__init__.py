"""One workflow module per notebook: what the notebook runs, in which order, and its figures.

| notebook | lab |
|---|---|
| 01_data | ``labs.data`` |
| 02_baseline_training | ``labs.baseline`` |
| 03_unstructured_pruning | ``labs.unstructured`` (its live playground: ``labs.playground``) |
| 04_structured_pruning | ``labs.structured`` |
| 05_report | ``labs.report`` |
| 06_quantization | ``labs.quantization`` |

Each notebook imports its lab the same way (``from labutils.labs import unstructured as lab``).
The library below (``prune``, ``quant``, ``train``, ``data``, ``models``, ``measure``,
``checkpoint``, ...) never imports a lab.
"""
