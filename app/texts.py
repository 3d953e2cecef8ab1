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
noise or JPEG artefacts they tend to blur. **Any photo size:** when what the networks would see is over
{max_side} pixels per side, they restore a region ({region_side}×{region_side} by default, placed on the
most detailed part of the photo: the window with the highest mean gradient magnitude; click on the input to
move it, or drag a box up to {max_side}) or the whole photo downscaled to fit; the
output size and an estimated time are shown before you run (measured on the machine that runs the app;
the details compare it with the real time of each model). Inputs larger than the tile size (Settings)
are processed in overlapping tiles (SGN then sorts within a tile)."""

LAM_HELP = """**Click on either output** to place the 16×16 LAM window (red box) there; LAM then attributes
that window to the input pixels for both models. LAM (Gu & Dong, CVPR 2021) integrates the gradient of
the window's edge strength along a path from a blurred input to the input,
$\\mathrm{LAM} = \\int_0^1 \\nabla_x D(F(\\gamma(\\alpha)))\\,\\gamma'(\\alpha)\\,d\\alpha$ with
$\\gamma$ the progressive-blur path. Red = strong attribution. The diffusion index
$\\mathrm{DI} = (1 - \\mathrm{Gini}) \\times 100$ is higher when the model uses more input pixels — the paper
uses it to show that MambaIRv2's attentive scan sees further than MambaIR's. Runs on a
{context}×{context}-pixel crop of the input around the window — the paper's setting (a 256×256 output at
×4) — and computes the same integral as LAM_Demo with Gauss–Legendre nodes on the blur path: the default
{steps} nodes are closer to the converged map than LAM_Demo's 50 steps, so the DI is comparable to the
paper's (with the official weights; the demo weights are small). Each node is one forward + backward
pass; fewer are faster and less exact."""

INTERNALS_HELP = """Both networks are run once on the centre of the current input (at most {size}×{size}
pixels) while every scan layer is recorded. Pick a layer (stage.block) of MambaIRv2; MambaIR pictures use the
same stage.block when it exists. The pictures follow **one pixel** (cyan) through an ASSM layer, in the order
the data flows: route → sort → scan with the prompt → unsort."""

STEP_PICK = r"""### 0 · Your pixel
Click any pixel of this picture (the input, tinted with its SGN labels) and every picture below follows it.
Pixels that got the same label as yours keep their colour; the others are faded."""

STEP_ROUTE = r"""### 1 · Route: every pixel gets a label (semantic-guided neighbouring, SGN)
A small MLP scores each pixel against $T$ prompts, $\mathbf{p} = \mathrm{LogSoftmax}(\mathrm{MLP}(x))$; its
label is the best one. Pixels with your pixel's label, anywhere in the image, will be its neighbours in
step 2. Below: how many pixels each prompt got in this layer, and the share per prompt in every layer
(perplexity $e^{H}$ = the effective number of prompts in use)."""

STEP_SORT = r"""### 2 · Sort: the image becomes one 1-D sequence, grouped by label
MambaIRv2 sorts the pixels by label (stable: raster order inside a group), so your pixel's group is one run
of the sequence (ribbon: label colours under each row) and consecutive entries can be far apart in the image.
MambaIR instead reads the image in four raster orders; the faded pixels are those each scan reads *after*
yours."""

STEP_THROUGH = r"""### 2½ · Step through the scan
**Play**, **step** or drag the slider: after $t$ steps each scan has read $t$ pixels (in colour; grey =
not read yet), MambaIRv2 in its label-sorted order (tinted with the labels), MambaIR in row-major order
(one of its four scans); the cyan box is the pixel read at step $t$. Below each picture: how much of
each output $y_t = \sum_{j<t} \alpha_{tj} x_j + \alpha_{tt} x_t$ comes from the pixels read before it,
$e_t / (e_t + o_t)$ with $e_t = \sum_d |\sum_{j<t} \alpha_{tj} x_j|$ and $o_t = \sum_d |\alpha_{tt} x_t|$
(its own input, the skip term included). Hover a pixel for its label, prompt and step."""

STEP_SCAN = r"""### 3 · Scan with the prompt: the attentive state-space equation (ASE)
One selective scan runs over the sorted sequence, $h_i = \bar A h_{i-1} + \bar B x_i$,
$y_i = (C_i + P_i)\, h_i + D x_i$: the prompt $P_i$ (a row of the low-rank pool $P = MN$) is added to the
query $C_i$, so pixels of one group ask the state the same kind of question. In the official code the prompt
is added in raster order while the sequence is sorted (Settings: *prompt order*), so the prompt added at your
pixel's position can be another pixel's."""

STEP_UNSORT = r"""### 4 · Unsort: each output goes back to its pixel
The scan's outputs are put back in raster order, so your pixel's output returns to its place. Because the scan
is linear in its input, that output is a weighted sum $y_i = \sum_{j\le i} \alpha_{ij} x_j$,
$\alpha_{ij} = C_i \big(\prod_{k=j+1}^{i} \bar A_k\big) \bar B_j$ (Ali et al., 2024): the maps show $|\alpha|$
over the image. MambaIRv2 reaches same-label pixels anywhere that were sorted before yours; MambaIR only
what its four raster scans visited before it."""


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
routers (e.g. random weights) the views still run and say so: they are meant for official and your own
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

EV_SERIES = """#### 5b. Prompt quality across training, next to PSNR
Give several checkpoints of one MambaIRv2 SR run (uploaded, or the folder that holds them, e.g.
`experiments/<run>/models`). The centre of the Restore tab's input is taken as ground truth: each
checkpoint restores its bicubic-downscaled copy and is scored (PSNR/SSIM on Y), and its layers' label
groups are measured as above. If the paper is right, the grouping should become more coherent than
chance (ratios below 1) as PSNR rises; ratios that stay at 1 while PSNR rises contradict it."""

EV_COST = """#### 6. Single-scan cost
MACs per component of the task's two networks, counted from the shapes of one forward with the
selective scan, window attention and SGN sort/gather included (`python -m model.evaluation.profile` prints the
same table for any preset), and the measured time with the current scan backend."""

TIMELINE_HELP = """### Prompts across training
Give several checkpoints of one MambaIRv2 run (a BasicSR `experiments/<run>/models/net_g_*.pth` series,
uploaded or as a folder): each is run on the centre of the Restore tab's input, and the curves show per
layer how sure the router is (mean largest route probability × T: 1 = every prompt equally likely),
how many prompts the image uses, how evenly (perplexity) and how many are dead; below, one layer's SGN
label map per checkpoint, side by side. A checkpoint whose router is near uniform is flagged: its labels
are arbitrary."""

ONNX_HELP = """### Download as ONNX
The selected network as an ONNX file for onnxruntime or any other ONNX tool: exported on demand
(the first time takes minutes), checked against PyTorch on a random and a real image (largest
difference at most 1e-4, else no file), then cached in `weights/onnx/` by the checkpoint's sha256.
One file takes any input size (from half a window up); argmax routing, stable sort. How to run it:
README, "Use these models elsewhere"."""
