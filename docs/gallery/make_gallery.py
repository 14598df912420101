"""Make the images of docs/gallery.md: ``python docs/gallery/make_gallery.py``.

The models are the seed's, fitted on the 10% sample of the bundled ``papers`` data (a
minute at most); the images are written beside this script.
"""

from __future__ import annotations

from pathlib import Path

import mixedglm as mg

HERE = Path(__file__).resolve().parent
USE = ["nauthors", "npages", "nrefs", "jifperc", "careerstage"]
COVARIATES = "nauthors + npages + nrefs + jifperc + careerstage + C(female) + C(usa)"


def main() -> None:
    sample = "sample10 == 1"
    re = mg.glmm(f"topq ~ {COVARIATES} + (1 + careerstage || id)", "papers", subset=sample,
                 nolog=True)  # fmt: skip
    re.plot_random_effects().savefig(HERE / "caterpillar.png", dpi=80)
    re.plot_coefficients(eform=True).savefig(HERE / "coefficients.png", dpi=80)
    hyb = mg.hybrid("topq ~ female + usa", "papers", use=USE, cluster="id",
                    family="binomial", subset=sample)  # fmt: skip
    hyb.plot().savefig(HERE / "hybrid.png", dpi=80)
    fe = mg.clogit(f"paprbest ~ {COVARIATES}", "papers", group="id", subset=sample, quiet=True)
    ri = mg.glmm(f"paprbest ~ {COVARIATES} + (1 | id)", "papers", subset=sample, nolog=True)
    mg.plot_compare([ri, fe], ["RE", "FE"]).savefig(HERE / "compare.png", dpi=80)


if __name__ == "__main__":
    main()
