# geocontrast: geographic context as contrastive training signal for species images.
# The pipeline's shape: data (world or download -> manifest -> image cache -> splits) -> geo tables ->
# pretraining (strategy x seed) -> evaluation (protocol x label budget) -> results table -> report figures.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/geo.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_outputs(),
    default_target: True


onsuccess:
    # The run ends with the aggregated results table (also in results/<name>/results_summary.txt).
    if os.path.exists(f"{RESULTS}/results_summary.txt"):
        print(open(f"{RESULTS}/results_summary.txt").read())
