"""The report's figures, rendered with matplotlib (Agg) into base64 PNG data URIs."""

from __future__ import annotations

import base64
import io


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def score_distribution(series: dict[str, list[float]]) -> str:
    """Histograms of head explanation scores, one per series (explanations, control, baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    bins = [i / 20 for i in range(21)]
    for (label, values), color in zip(series.items(), ("tab:blue", "tab:gray", "tab:orange")):
        if values:
            mean = sum(values) / len(values)
            axis.hist(values, bins=bins, alpha=0.55, color=color, label=f"{label} (n={len(values)}, mean {mean:.3f})")
            axis.axvline(mean, color=color, linestyle="--", linewidth=1)
    axis.axvline(0.5, color="black", linewidth=0.8, alpha=0.4)
    axis.set_xlabel("head explanation score (balanced accuracy)")
    axis.set_ylabel("heads")
    axis.set_xlim(0, 1)
    axis.legend(loc="upper left", fontsize=8)
    return _png(figure)


def attribution_heatmap(mean_attribution: list[list[float]], title: str,
                        highlighted: list[tuple[int, int]]) -> str:
    """Layer x head mean attribution, with the heads worth explaining outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    layers, heads = len(mean_attribution), len(mean_attribution[0])
    figure, axis = plt.subplots(figsize=(min(1.2 + 0.35 * heads, 9), min(1.2 + 0.25 * layers, 8)))
    bound = max((abs(v) for row in mean_attribution for v in row), default=1.0) or 1.0
    image = axis.imshow(mean_attribution, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for layer, head in highlighted:
        axis.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    axis.set_xlabel("head")
    axis.set_ylabel("layer")
    axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, shrink=0.8, label="mean attribution")
    return _png(figure)
