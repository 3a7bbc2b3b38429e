import math

import pytest
import torch

from geocontrast.losses import (
    NegativeCosineLoss,
    NTXentLoss,
    SupConLoss,
    SwAVLoss,
    SymmetricInfoNCELoss,
    TripletMarginLoss,
    sinkhorn_knopp,
)


def reference_ntxent(z_a, z_b, temperature, extra=None, false_negatives=None, extra_false_negatives=None):
    """NT-Xent written out term by term; a false negative of degree f (True: 1) weighs 1 - f in a denominator."""
    batch = z_a.shape[0]
    views = [torch.nn.functional.normalize(v, dim=0) for v in list(z_a) + list(z_b)]
    extra = [] if extra is None else [torch.nn.functional.normalize(e, dim=0) for e in extra]
    total = 0.0
    for i in range(2 * batch):
        item, positive = i % batch, (i + batch) % (2 * batch)
        numerator = math.exp(float(views[i] @ views[positive]) / temperature)
        denominator = 0.0
        for j in range(2 * batch):
            other = j % batch
            if j == i:
                continue
            weight = 1.0
            if j != positive and other != item and false_negatives is not None:
                weight -= float(false_negatives[item, other])
            denominator += weight * math.exp(float(views[i] @ views[j]) / temperature)
        for e, negative in enumerate(extra):
            weight = 1.0 if extra_false_negatives is None else 1.0 - float(extra_false_negatives[item, e])
            denominator += weight * math.exp(float(views[i] @ negative) / temperature)
        total += -math.log(numerator / denominator)
    return total / (2 * batch)


def random_inputs(seed=0, batch=4, dim=5, n_extra=3):
    g = torch.Generator().manual_seed(seed)
    z_a, z_b = torch.randn(batch, dim, generator=g), torch.randn(batch, dim, generator=g)
    extra = torch.randn(n_extra, dim, generator=g)
    false_negatives = torch.rand(batch, batch, generator=g) < 0.4
    extra_false_negatives = torch.rand(batch, n_extra, generator=g) < 0.4
    return z_a, z_b, extra, false_negatives, extra_false_negatives


def test_matches_reference_without_extras():
    z_a, z_b, *_ = random_inputs()
    loss = NTXentLoss(temperature=0.5)(z_a, z_b)
    assert loss.item() == pytest.approx(reference_ntxent(z_a, z_b, 0.5), rel=1e-5)


def test_matches_reference_with_extra_negatives():
    z_a, z_b, extra, *_ = random_inputs(1)
    loss = NTXentLoss(temperature=0.3)(z_a, z_b, extra_negatives=extra)
    assert loss.item() == pytest.approx(reference_ntxent(z_a, z_b, 0.3, extra), rel=1e-5)


def test_matches_reference_with_masks():
    z_a, z_b, extra, false_negatives, extra_false_negatives = random_inputs(2)
    false_negatives[0, 0] = True  # the diagonal must be ignored
    loss = NTXentLoss(temperature=0.3)(z_a, z_b, extra, false_negatives, extra_false_negatives)
    expected = reference_ntxent(z_a, z_b, 0.3, extra, false_negatives, extra_false_negatives)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_masked_extra_negative_drops_out():
    z_a, z_b, extra, *_ = random_inputs(3, batch=2, n_extra=2)
    extra_false_negatives = torch.tensor([[True, False], [True, False]])  # extra 0 masked for every item
    loss = NTXentLoss(temperature=0.2)
    before = loss(z_a, z_b, extra, extra_false_negatives=extra_false_negatives)
    changed = extra.clone()
    changed[0] = torch.randn(extra.shape[1])
    after = loss(z_a, z_b, changed, extra_false_negatives=extra_false_negatives)
    assert after.item() == pytest.approx(before.item(), rel=1e-6)
    assert after.item() == pytest.approx(loss(z_a, z_b, extra[1:]).item(), rel=1e-6)


def test_geo_near_items_drop_out_of_each_others_denominators():
    # B = 2 and the pair marked geo-near: each view's denominator keeps only its positive, so the loss is
    # exactly zero whatever the other item's embedding is.
    z_a, z_b, *_ = random_inputs(4, batch=2)
    false_negatives = torch.tensor([[False, True], [True, False]])
    loss = NTXentLoss(temperature=0.2)
    assert loss(z_a, z_b, false_negatives=false_negatives).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(z_a, z_b).item() > 0.01


def test_false_negative_degrees_of_one_are_the_hard_mask():
    z_a, z_b, extra, false_negatives, extra_false_negatives = random_inputs(6)
    loss = NTXentLoss(temperature=0.3)
    hard = loss(z_a, z_b, extra, false_negatives, extra_false_negatives)
    soft = loss(z_a, z_b, extra, false_negatives.float(), extra_false_negatives.float())
    assert soft.item() == pytest.approx(hard.item(), rel=1e-6)


def test_false_negative_degrees_of_zero_are_plain_ntxent():
    z_a, z_b, extra, false_negatives, extra_false_negatives = random_inputs(7)
    loss = NTXentLoss(temperature=0.3)
    zeros = loss(z_a, z_b, extra, torch.zeros(false_negatives.shape), torch.zeros(extra_false_negatives.shape))
    assert zeros.item() == pytest.approx(loss(z_a, z_b, extra).item(), rel=1e-6)


def test_false_negative_degrees_between_weigh_the_denominator_terms():
    z_a, z_b, extra, *_ = random_inputs(8)
    g = torch.Generator().manual_seed(8)
    degrees, extra_degrees = torch.rand(4, 4, generator=g), torch.rand(4, 3, generator=g)
    loss = NTXentLoss(temperature=0.3)(z_a, z_b, extra, degrees, extra_degrees)
    expected = reference_ntxent(z_a, z_b, 0.3, extra, degrees, extra_degrees)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_soft_false_negative_with_smoothing_matches_a_hand_computed_value():
    # Two orthogonal items, both views identical, temperature 1: each view's positive scores e^1 and the other
    # item's two views e^0, each weighted 1 - 0.5, so the denominator is e + 1. Smoothing 0.2 moves 0.2 of the
    # target onto those two views (0.1 each).
    z = torch.eye(2, 3)
    degrees = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    weighted = NTXentLoss(temperature=1.0)(z, z.clone(), false_negatives=degrees)
    assert weighted.item() == pytest.approx(math.log(1 + 1 / math.e), rel=1e-6)
    smoothed = NTXentLoss(temperature=1.0, false_negative_smoothing=0.2)(z, z.clone(), false_negatives=degrees)
    expected = -0.8 * math.log(math.e / (math.e + 1)) - 0.2 * math.log(0.5 / (math.e + 1))
    assert smoothed.item() == pytest.approx(expected, rel=1e-6)


def test_smoothing_without_false_negatives_is_plain_ntxent():
    z_a, z_b, *_ = random_inputs(9)
    smoothed = NTXentLoss(temperature=0.3, false_negative_smoothing=0.3)
    assert smoothed(z_a, z_b, false_negatives=torch.zeros(4, 4)).item() == pytest.approx(
        NTXentLoss(temperature=0.3)(z_a, z_b).item(), rel=1e-6
    )


def test_smoothing_refuses_a_dropped_false_negative_and_an_epsilon_of_one():
    z_a, z_b, *_ = random_inputs(10, batch=2)
    with pytest.raises(ValueError, match="degrees below 1"):
        NTXentLoss(false_negative_smoothing=0.1)(z_a, z_b, false_negatives=torch.tensor([[False, True], [True, False]]))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        NTXentLoss(false_negative_smoothing=1.0)


def test_false_negative_degrees_outside_zero_one_are_refused():
    z_a, z_b, *_ = random_inputs(11, batch=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NTXentLoss()(z_a, z_b, false_negatives=torch.full((2, 2), 1.5))


def test_perfect_positives_and_orthogonal_negatives_give_low_loss():
    z = torch.eye(4)
    loss = NTXentLoss(temperature=0.1)(z, z.clone())
    # each anchor: positive exp(10), 6 negatives exp(0) -> log(1 + 6 e^-10). The loss is a float32
    # log-sum-exp near 10 minus 10, so its absolute error is a few float32 ulps at 10 (~1e-6), whatever the kernel.
    assert loss.item() == pytest.approx(math.log(1 + 6 * math.exp(-10)), abs=4e-6)
    assert loss.item() < 1e-3


def test_computes_in_float32_under_autocast():
    z_a, z_b, *_ = random_inputs(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = NTXentLoss(0.5)(z_a.bfloat16(), z_b.bfloat16())
    assert loss.dtype == torch.float32


@pytest.mark.parametrize("temperature", [0.0, 1e-9, -1.0])
def test_refuses_near_zero_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature)


def reference_supcon(z, labels, temperature):
    """SupCon (L_out) written out view by view."""
    views = [torch.nn.functional.normalize(v, dim=0) for v in z]
    total, counted = 0.0, 0
    for i, view in enumerate(views):
        others = [j for j in range(len(views)) if j != i]
        positives = [j for j in others if labels[j] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(view @ views[a]) / temperature) for a in others)
        total += -sum(math.log(math.exp(float(view @ views[p]) / temperature) / denominator) for p in positives) / len(
            positives
        )
        counted += 1
    return total / counted


def test_supcon_matches_reference():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(8, 5, generator=g)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 1])  # class 2 and 3 have one view: no positive, left out
    loss = SupConLoss(temperature=0.2)(z, labels)
    assert loss.item() == pytest.approx(reference_supcon(z, labels.tolist(), 0.2), rel=1e-5)


def test_supcon_with_one_positive_per_view_is_ntxent():
    z_a, z_b, *_ = random_inputs(4)
    labels = torch.arange(4).repeat(2)
    supcon = SupConLoss(temperature=0.3)(torch.cat([z_a, z_b]), labels)
    assert supcon.item() == pytest.approx(NTXentLoss(temperature=0.3)(z_a, z_b).item(), rel=1e-5)


def test_supcon_refuses_a_batch_without_positives():
    with pytest.raises(ValueError, match="no view"):
        SupConLoss()(torch.randn(3, 4), torch.tensor([0, 1, 2]))


def test_triplet_loss_matches_reference():
    g = torch.Generator().manual_seed(5)
    a, p, n = (torch.randn(6, 4, generator=g) for _ in range(3))
    expected = 0.0
    for row in range(6):
        ua, up, un = (torch.nn.functional.normalize(x[row], dim=0) for x in (a, p, n))
        expected += max(0.0, float(((ua - up) ** 2).sum() - ((ua - un) ** 2).sum()) + 0.5)
    assert TripletMarginLoss(margin=0.5)(a, p, n).item() == pytest.approx(expected / 6, rel=1e-5)


def test_triplet_loss_is_zero_once_the_negative_is_margin_further():
    a = torch.tensor([[1.0, 0.0]])
    assert TripletMarginLoss(margin=0.5)(a, a, -a).item() == 0.0  # 0 - 4 + 0.5 < 0
    assert TripletMarginLoss(margin=0.5)(a, -a, a).item() == pytest.approx(4.5)


@pytest.mark.parametrize("margin", [0.0, -1.0, 5.0])
def test_triplet_margin_out_of_range_is_refused(margin):
    with pytest.raises(ValueError, match="margin"):
        TripletMarginLoss(margin=margin)


def test_negative_cosine_matches_reference_and_stops_target_gradients():
    g = torch.Generator().manual_seed(6)
    p_a, z_b, p_b, z_a = (torch.randn(5, 3, generator=g, requires_grad=True) for _ in range(4))
    loss = NegativeCosineLoss()(p_a, z_b, p_b, z_a)
    cos = torch.nn.functional.cosine_similarity
    expected = 2 - (cos(p_a, z_b, dim=1).mean() + cos(p_b, z_a, dim=1).mean()).item()
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert p_a.grad is not None and p_b.grad is not None
    assert z_a.grad is None and z_b.grad is None  # the targets are detached


@pytest.mark.parametrize(("samples", "prototypes"), [(32, 8), (16, 40)])
def test_sinkhorn_assignments_have_uniform_marginals(samples, prototypes):
    g = torch.Generator().manual_seed(0)
    scores = torch.nn.functional.normalize(torch.randn(samples, 6, generator=g), dim=1) @ (
        torch.nn.functional.normalize(torch.randn(prototypes, 6, generator=g), dim=1).T
    )
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=100)
    assert codes.shape == (samples, prototypes) and (codes >= 0).all()
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(samples), atol=1e-5, rtol=0)  # one unit per sample
    uniform = torch.full((prototypes,), samples / prototypes)
    torch.testing.assert_close(codes.sum(dim=0), uniform, atol=1e-3 * samples / prototypes, rtol=0)
    few = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)  # SwAV's: samples exact, prototypes on their way
    torch.testing.assert_close(few.sum(dim=1), torch.ones(samples), atol=1e-5, rtol=0)


def test_sinkhorn_keeps_each_samples_preference_among_prototypes():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    codes = sinkhorn_knopp(scores, epsilon=0.1, iterations=50)
    assert codes.argmax(dim=1).tolist() == [0, 0, 1, 1]


def test_swav_loss_is_the_swapped_cross_entropy_of_the_codes():
    g = torch.Generator().manual_seed(1)
    z_a, z_b, crop = (torch.randn(8, 5, generator=g) for _ in range(3))
    prototypes = torch.randn(4, 5, generator=g)
    c = torch.nn.functional.normalize(prototypes, dim=1)
    scores = [torch.nn.functional.normalize(z, dim=1) @ c.T for z in (z_a, z_b, crop)]
    codes = [sinkhorn_knopp(s, 0.05, 3) for s in scores[:2]]

    def cross_entropy(code, view):
        return -(code * (scores[view] / 0.1).log_softmax(dim=1)).sum(dim=1).mean()

    two_views = (cross_entropy(codes[0], 1) + cross_entropy(codes[1], 0)) / 2
    assert SwAVLoss(0.1)([z_a, z_b], prototypes).item() == pytest.approx(two_views.item(), rel=1e-6)
    with_crop = (cross_entropy(codes[0], 1) + cross_entropy(codes[0], 2) + cross_entropy(codes[1], 0)) / 4 + (
        cross_entropy(codes[1], 2) / 4
    )
    assert SwAVLoss(0.1)([z_a, z_b, crop], prototypes).item() == pytest.approx(with_crop.item(), rel=1e-6)


def test_swav_gradients_flow_through_the_predictions_only():
    g = torch.Generator().manual_seed(3)
    z_a, z_b = (torch.randn(8, 5, generator=g, requires_grad=True) for _ in range(2))
    prototypes = torch.randn(4, 5, generator=g)
    SwAVLoss(0.1)([z_a, z_b], prototypes).backward()
    c = torch.nn.functional.normalize(prototypes, dim=1)
    # z_a's gradient comes only from its prediction of z_b's code, a constant: its own code passes none
    q_b = sinkhorn_knopp(torch.nn.functional.normalize(z_b.detach(), dim=1) @ c.T, 0.05, 3)
    z = z_a.detach().requires_grad_()
    (
        -(q_b * ((torch.nn.functional.normalize(z, dim=1) @ c.T) / 0.1).log_softmax(dim=1)).sum(dim=1).mean() / 2
    ).backward()
    torch.testing.assert_close(z_a.grad, z.grad)


def test_symmetric_infonce_of_matched_orthogonal_pairs_is_log_one_plus_exp_minus_one_over_t():
    identity = torch.eye(2)
    # each row: its own column at 1/t = 2, the other at 0; both directions alike
    assert SymmetricInfoNCELoss(temperature=0.5)(identity, identity).item() == pytest.approx(math.log(1 + math.exp(-2)))


def test_symmetric_infonce_averages_image_to_location_and_location_to_image_cross_entropies():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    location = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # unit vector (1, 1)/sqrt(2)
    c = 1 / math.sqrt(2)  # similarities, rows images, columns locations: [[1, c], [0, c]]
    image_to_location = -math.log(math.e / (math.e + math.exp(c))) - math.log(math.exp(c) / (1 + math.exp(c)))
    location_to_image = -math.log(math.e / (math.e + 1)) - math.log(math.exp(c) / (2 * math.exp(c)))
    expected = (image_to_location + location_to_image) / 4  # mean over 2 items of the mean of the 2 directions
    assert SymmetricInfoNCELoss(temperature=1.0)(image, location).item() == pytest.approx(expected)


def test_symmetric_infonce_leaves_out_an_item_without_coordinates_as_anchor_and_as_negative():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(3, 4, generator=g, requires_grad=True)
    location = torch.randn(3, 4, generator=g, requires_grad=True)
    loss = SymmetricInfoNCELoss(temperature=0.1)
    masked = loss(image, location, valid=torch.tensor([True, True, False]))
    assert masked.item() == pytest.approx(loss(image[:2], location[:2]).item())
    masked.backward()
    assert not image.grad[2].any() and not location.grad[2].any()
    assert image.grad[:2].abs().sum() > 0


@pytest.mark.parametrize("valid", [[True, False, False], [False, False, False]])
def test_symmetric_infonce_of_fewer_than_two_located_items_is_zero_without_gradient(valid):
    image = torch.randn(3, 4, requires_grad=True)
    location = torch.randn(3, 4, requires_grad=True)
    value = SymmetricInfoNCELoss(temperature=0.1)(image, location, valid=torch.tensor(valid))
    value.backward()
    assert value.item() == 0.0
    assert not image.grad.any() and not location.grad.any()  # zero, and finite


def test_symmetric_infonce_refuses_near_zero_temperature():
    with pytest.raises(ValueError, match="temperature"):
        SymmetricInfoNCELoss(temperature=0.0)
