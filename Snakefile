# geocontrast: geographic context as contrastive training signal for species images.
# The pipeline's shape: data (world or download -> manifest -> image cache -> splits), then later stages.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/geo.smk"
include: "workflow/rules/pretrain.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
