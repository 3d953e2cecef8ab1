"""Words shown in the app: what each picture shows, with the paper's equations where they help."""

INTRO = """# MambaIRv2 Explorer
Run **MambaIRv2** ([arXiv 2411.15269](https://arxiv.org/abs/2411.15269)) and the baseline **MambaIR**
side by side on your image, then look inside: which pixels the router groups together, the order in which
the scan reads them, the prompts, and which input pixels each output window depends on (LAM).
"""

RESTORE_HELP = """**Restore as is** runs the models on your image (for SR the output is *scale* times larger).
**Treat as ground truth** first degrades your image the way the benchmarks do (MATLAB bicubic downscaling,
Gaussian noise, or JPEG), restores it, and scores every output against your original with PSNR/SSIM
(BasicSR conventions). SR models were trained on bicubic-downscaled images: on real camera photos with
noise or JPEG artefacts they tend to blur. Inputs over {max_side} pixels per side are refused; inputs
larger than the tile size (Settings) are processed in overlapping tiles (SGN then sorts within a tile)."""

LAM_HELP = """**Click on either output** to place the 16×16 LAM window (red box) there; LAM then attributes
that window to the input pixels for both models. LAM (Gu & Dong, CVPR 2021) integrates the gradient of
the window's edge strength along a path from a blurred input to the input,
$\\mathrm{LAM} = \\int_0^1 \\nabla_x D(F(\\gamma(\\alpha)))\\,\\gamma'(\\alpha)\\,d\\alpha$ with
$\\gamma$ the progressive-blur path. Red = strong attribution. The diffusion index
$\\mathrm{DI} = (1 - \\mathrm{Gini}) \\times 100$ is higher when the model uses more input pixels — the paper
uses it to show that MambaIRv2's attentive scan sees further than MambaIR's. Runs on a
{context}×{context}-pixel crop of the input around the window (the paper uses 64×64, i.e. a 256×256
output at ×4; smaller here to keep CPU runs to about a minute); fewer steps are faster and noisier."""

INTERNALS_HELP = """Both networks are run once on the centre of the current input (at most {size}×{size}
pixels) while every scan layer is recorded. Pick a layer (stage.block) of MambaIRv2; MambaIR pictures use the
same stage.block when it exists."""

SGN = """### Semantic-guided neighbouring (SGN)
Each ASSM layer routes every pixel to one of $T$ prompts:
$\\mathbf{p} = \\mathrm{LogSoftmax}(\\mathrm{MLP}(x))$, label $=\\arg\\max$ (Gumbel-softmax during
training). Pixels with the same colour got the same label and **become neighbours in the 1-D sequence**,
wherever they are in the image: the scan no longer depends on raster position."""

SEQUENCE = """### The 1-D sequence the scan reads
MambaIRv2 sorts the pixels by label (stable: raster order inside a group) and runs **one** scan over the
sorted sequence; the ribbon shows the input's pixels in that order, with the label colours under each row.
MambaIR instead runs four raster scans (row/column-major, forward and reversed) and sums them: a pixel's
neighbours in every sequence are its row or column neighbours."""

ROUTING = """### Prompt routing
How many pixels each prompt received in this layer (left), and the share per prompt for every layer
(right). Perplexity $e^{H}$ is the effective number of prompts in use: $T$ for an even split, 1 when all
pixels take one prompt."""

PROMPTS = """### The prompt pool
Prompts are low-rank: $P = M N$ with $M\\in\\mathbb{R}^{T\\times r}$ (`embeddingB`) and
$N\\in\\mathbb{R}^{r\\times d}$ (`embeddingA`). Left: the $T$ prompts projected to 2-D (marker size = pixels
routed there); right: cosine similarity between prompts."""

ASE = """### Attentive state-space equation (ASE)
MambaIRv2 adds the pixel's prompt to the output matrix of the state-space model:
$h_i = \\bar A h_{i-1} + \\bar B x_i$, $\\; y_i = (C_i + P_i)\\, h_i + D x_i$.
$C$ acts like a query; the prompt lets a pixel query what its semantic group has put in the state.
Maps: cosine of prompt and $C$, and $\\lVert P\\rVert / \\lVert C\\rVert$ (where the prompt dominates). In
the official code the prompt is added in raster order while the sequence is sorted (Settings:
*prompt order*)."""

ATTENTION = """### Implicit attention of the scan
A selective scan is linear in its input, so output $i$ is a weighted sum of earlier inputs
$y_i = \\sum_{j\\le i} \\alpha_{ij} x_j$ with
$\\alpha_{ij} = C_i \\big(\\prod_{k=j+1}^{i} \\bar A_k\\big) \\bar B_j$ (Ali et al., 2024).
The maps show $|\\alpha|$ of the query pixel (cross) over the image, averaged over channels: MambaIRv2
reaches same-label pixels anywhere that were sorted before it; MambaIR only what its raster scans visited."""


def fill(text: str, **values: object) -> str:
    """Replace ``{name}`` placeholders (str.format would trip over LaTeX braces)."""
    for k, v in values.items():
        text = text.replace("{" + k + "}", str(v))
    return text

WEIGHTS_HELP = """**Official weights** come from the official Hugging Face repository (`cguoh/MambaIR`): each
button lists the repository, downloads the matching file and accepts it only when its tensors are that
network (`MAMBAIR_WEIGHTS=official python app.py` fetches them all at start; a Space does so by default).
**Your own checkpoint** (`.pth`, `.pt` or `.safetensors` of MambaIRv2, MambaIRv2-light or MambaIR, any
configuration, e.g. a BasicSR `net_g_5000.pth`) is read safely (weights only; code in a pickle never runs)
and offered as a task named by its file name, beside the other network's best model for the same task."""

EVIDENCE_HELP = """### The paper's claims, on your image and checkpoint
Each view tests one claim of the MambaIRv2 paper on the current input (Restore tab) and the task's
checkpoints, and says in one line what would contradict the claim. Views that record a layer use the
centre of the input (at most {size}×{size} pixels); the knock-outs run the whole image. With untrained
routers (e.g. demo weights) the views still run and say so: they are meant for official and your own
checkpoints."""

EV_REDUNDANCY = """#### 1. Redundancy of MambaIR's four scans (paper Fig. 2a)
Cosine similarity between the outputs of the row, column and reversed scans, each moved back to raster
order; also without the skip term $D u$, which is the same in every scan."""

EV_DECAY = """#### 2. Long-range decay: raster order vs SGN
The exact implicit attention weight $|\\alpha_{i,j}|$ of the scan against the distance $i-j$ in the
sequence, with the pure decay $e^{\\bar\\Delta A k}$; and how far apart same-label pixels are in raster
order and in the order the scan reads them."""

EV_ASE = """#### 3. ASE query map (paper Fig. 5)
Cosine similarity between the prompt added to the query pixel's $C$ and the $C$ of every pixel. The
official code adds the prompt of raster pixel $s$ at sorted position $s$ (not the pixel's own prompt):
left as the weights were trained, right with the prompt moved with its pixel."""

EV_ABLATION = """#### 4. Knock-outs at inference
MambaIRv2 as trained; with SGN off (raster-order scan, same prompts); with the prompt removed from $C$;
with aligned prompts. In ground-truth mode each variant is scored (PSNR/SSIM, BasicSR conventions)."""

EV_QUALITY = """#### 5. Prompt quality per layer
Within-label variance of the input pixels and of the layer's features, divided by that of random groups
of the same sizes (below 1: the labels group similar pixels), and how often 4-neighbours share a label."""

EV_COST = """#### 6. Single-scan cost
MACs per component of the task's two networks, counted from the shapes of one forward with the
selective scan, window attention and SGN sort/gather included (`python -m model.profile` prints the
same table for any preset), and the measured time with the current scan backend."""

TIMELINE_HELP = """### Prompts across training
Give several checkpoints of one MambaIRv2 run (a BasicSR `experiments/<run>/models/net_g_*.pth` series,
uploaded or as a folder): each is run on the centre of the Restore tab's input, and the curves show per
layer how sure the router is (mean largest route probability × T: 1 = every prompt equally likely),
how many prompts the image uses, how evenly (perplexity) and how many are dead; below, one layer's SGN
label map per checkpoint, side by side. A checkpoint whose router is near uniform is flagged: its labels
are arbitrary."""
