import sys, tempfile, json, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, "bench")
from from_module import ResNet20, spec
from lth.models import register_module
from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.store import RunDir
for path in ("fx", "vmap"):
    register_module(f"g_{path}", ResNet20, path=path)
    sp = spec(f"g_{path}", (3, 32, 32), 32, 32 * 12)
    sp = dataclasses.replace(sp, data=dataclasses.replace(sp.data, augment=True))
    data = load_dataset(sp.data, None, torch.device("cuda"))
    finals = {}
    for graph in ("auto", "off"):
        with tempfile.TemporaryDirectory() as d:
            jobs = [Job(sp, r, Path(d) / f"r{r}") for r in range(2)]
            train_population(jobs, data, EngineOptions(device="cuda", cuda_graph=graph, checkpoint_every=None))
            s = RunDir(Path(d) / "r1")
            finals[graph] = s.load_tensors(Path(s.states()["final"]))
    diff = max((finals["auto"][k].float() - finals["off"][k].float()).abs().max().item() for k in finals["off"])
    print(json.dumps({"path": path, "graph_vs_eager_max_abs_diff": diff}), flush=True)
