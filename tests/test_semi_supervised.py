"""The semi-supervised conditional VAE (Kingma et al. 2014, M2): the balanced choice of labeled
images, the unlabeled bound with y summed out exactly (checked against the sum written by hand), one
batched decoder pass over the classes, and a real run on MNIST with 100 labels through the CLI."""

from __future__ import annotations

import json

import pyro
import pytest
import torch

from pyro_vae import Config, SemiSupervisedVAE
from pyro_vae.data import balanced_labels, one_hot
from pyro_vae.errors import PyroVAEError
from pyro_vae.objectives import LabelsSummed, SemiSupervised
from pyro_vae.data import Split

NUM_CLASSES = 10  # MNIST's


def small_m2(**overrides) -> SemiSupervisedVAE:
    torch.manual_seed(0)
    pyro.clear_param_store()
    return SemiSupervisedVAE(Config(z_dim=4, hidden_dims=(32,), conditional=True, labels=20, **overrides))


def binary_batch(size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    return torch.bernoulli(torch.rand(size, 784, generator=generator), generator=generator)


def test_labeled_images_are_balanced_and_chosen_by_the_seed():
    labels = torch.arange(1000) % NUM_CLASSES
    chosen = balanced_labels(labels, 100, seed=3, num_classes=10)
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100
    assert torch.bincount(labels[chosen], minlength=NUM_CLASSES).tolist() == [10] * NUM_CLASSES
    assert torch.equal(chosen, balanced_labels(labels, 100, seed=3, num_classes=10))
    assert not torch.equal(chosen, balanced_labels(labels, 100, seed=4, num_classes=10))
    with pytest.raises(PyroVAEError, match="class 0, which has only 100"):
        balanced_labels(labels, 1010, seed=0, num_classes=10)


def test_unlabeled_bound_is_the_sum_over_classes_written_by_hand():
    """U(x) = sum_y q(y|x) [log p(x|y,z_y) + log p(y) + log p(z_y) - log q(z_y|x,y)] + H(q(y|x)),
    with z_y ~ q(z|x,y): TraceEnum_ELBO with the label enumerated, on the same draws."""
    vae, x = small_m2(), binary_batch()
    pyro.set_rng_seed(11)
    summed = -LabelsSummed().loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(11)
    with torch.no_grad():
        classes = one_hot(torch.arange(NUM_CLASSES), 10).unsqueeze(1)  # (10, 1, 10), as Pyro enumerates
        q_z = vae.posterior(x, vae.condition(classes))
        z = q_z.rsample()  # (10, n, z_dim)
        bound = (
            vae.likelihood(z, vae.condition(classes)).log_prob(x)
            + vae.label_prior((x.shape[0],)).log_prob(classes)
            + vae.prior((x.shape[0],)).log_prob(z)
            - q_z.log_prob(z)
        )
        q_y = vae.classify(x)
        probabilities = q_y.probs.T  # (10, n)
        by_hand = ((probabilities * bound).sum(0) + q_y.entropy()).sum().item()
    assert summed == pytest.approx(by_hand, rel=1e-5)


def test_the_classes_are_one_batched_decoder_pass_not_a_loop():
    vae, x = small_m2(), binary_batch(8)
    shapes = []
    vae.decoder.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
    labeled = Split(torch.rand(20, 784), torch.arange(20) % NUM_CLASSES)
    objective = SemiSupervised(labeled, vae.classify, classifier_weight=50.0, batch_size=5, binary=True, num_classes=10)
    objective.loss_and_grads(vae.model, vae.guide, x)
    assert shapes == [(NUM_CLASSES, 8, 784), (5, 784)]  # the unlabeled batch, then the labeled one
    assert vae.classifier[0].net.layers[0].weight.grad.abs().sum() > 0


def test_the_auxiliary_term_trains_the_classifier_on_the_labels():
    """Without alpha the classifier sees labels only through U(x); its gradient from the labeled
    batch is exactly alpha * d/dphi mean[-log q(y|x)]."""
    vae, x = small_m2(), binary_batch(8)
    labeled = Split(binary_batch(5), torch.arange(5))
    weight = vae.classifier[0].net.layers[-1].weight
    gradients = []
    for alpha in (1.0, 3.0):
        pyro.set_rng_seed(0)
        SemiSupervised(labeled, vae.classify, alpha, batch_size=5, binary=False, num_classes=10).loss_and_grads(vae.model, vae.guide, x)
        gradients.append(weight.grad.clone())
        weight.grad = None
    images, labels = labeled.images, one_hot(labeled.labels, 10)
    pyro.set_rng_seed(0)
    order = torch.randperm(5)  # the same labeled batch order as the objective drew
    expected = torch.autograd.grad(-vae.classify(images[order]).log_prob(labels[order]).mean(), weight)[0]
    assert torch.allclose(gradients[1] - gradients[0], 2.0 * expected, atol=1e-5)


def test_labeled_images_observe_y_and_unlabeled_ones_draw_it():
    vae, x = small_m2(), binary_batch()
    y = one_hot(torch.arange(6) % NUM_CLASSES, 10)
    labeled = pyro.poutine.trace(vae.guide).get_trace(x, y)
    unlabeled = pyro.poutine.trace(vae.guide).get_trace(x)
    assert "y" not in labeled.nodes and unlabeled.nodes["y"]["value"].shape == (6, NUM_CLASSES)
    model = pyro.poutine.trace(vae.model).get_trace(x, y)
    assert model.nodes["y"]["is_observed"] and torch.equal(model.nodes["y"]["value"], y)


def test_the_evaluator_bound_with_the_kl_in_closed_form_is_the_sum_over_classes_by_hand():
    """``LabelsWeighted(TraceMeanField_ELBO)``, the evaluator's analytic estimator for an unlabeled
    image: sum_y q(y|x) [log p(x|y,z_y) + log p(y) - KL(q(z|x,y) || p(z))] + H(q(y|x)), on the
    same draws of z_y; the classifier gets gradients through q(y|x)."""
    from pyro.infer import TraceMeanField_ELBO

    from pyro_vae.objectives import LabelsWeighted

    vae, x = small_m2(), binary_batch()
    estimator = LabelsWeighted(TraceMeanField_ELBO(), vae.classify, NUM_CLASSES)
    pyro.set_rng_seed(5)
    bound = -estimator.loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(5)
    with torch.no_grad():
        q_y = vae.classify(x)
        assert q_y.probs.min() > 1e-8  # an untrained classifier rules out no label: every pair is scored
        y = one_hot(torch.arange(NUM_CLASSES).repeat(x.shape[0]), NUM_CLASSES)  # each image with each label
        every_image = x.repeat_interleave(NUM_CLASSES, 0)
        q_z = vae.posterior(every_image, vae.condition(y))
        z = q_z.rsample()
        kl = torch.distributions.kl_divergence(q_z, vae.prior((len(y),)))
        terms = vae.likelihood(z, vae.condition(y)).log_prob(every_image) + vae.label_prior((len(y),)).log_prob(y) - kl
        by_hand = (q_y.probs.reshape(-1) * terms).sum() + q_y.entropy().sum()
    assert bound == pytest.approx(by_hand.item(), rel=1e-5)
    estimator.loss_and_grads(vae.model, vae.guide, x)
    assert vae.classifier[0].net.layers[0].weight.grad.abs().sum() > 0


def test_semi_supervised_active_units_read_q_of_y_not_the_labels():
    """E_q[z|x] = sum_y q(y|x) E_q[z|x,y] for the active-unit count: shuffling the labels the split
    carries changes nothing."""
    from pyro_vae.evaluation import active_units

    vae, x = small_m2(), binary_batch(12)
    mean = vae.posterior_mean(x)
    probabilities = vae.classify(x).probs
    by_hand = sum(probabilities[:, [label]] * vae.posterior_mean(x, one_hot(torch.full((12,), label), 10))
                  for label in range(NUM_CLASSES))  # fmt: skip
    assert torch.allclose(mean, by_hand, atol=1e-6)
    # a threshold between the units' variances, so that the count depends on which means are taken
    variances = mean.var(dim=0).sort().values
    threshold = ((variances[1] + variances[2]) / 2).item()
    labels = torch.arange(12) % NUM_CLASSES
    for carried in (labels, labels.flip(0)):
        assert active_units(vae, Split(x, carried), threshold=threshold) == [2]
    with_the_labels = vae.posterior_mean(x, one_hot(labels, NUM_CLASSES)).var(dim=0)
    assert int((with_the_labels > threshold).sum()) != 2  # what reading the labels would have counted


DIGIT_ACCURACY_FLOOR = 0.3  # what the 2-epoch run below must beat: q(y|x) is above 0.5 by then


@pytest.mark.slow
def test_semi_supervised_run_with_100_labels_trains_resumes_evaluates_samples_and_plots(
    tmp_path, data_root, digit_classifier, classifier_cache
):
    """A real run through the CLI: 100 labels (10 per class), two epochs of small networks on 20,000
    images. It classifies the test set well above chance, evaluate, sample and plot work, and a run
    on 4,000 images resumes bit for bit."""
    from conftest import run_here

    env = {"XDG_CACHE_HOME": str(classifier_cache)}
    common = ["--conditional", "--labels", "100", "--z-dim", "8", "--hidden-dims", "128", "--subset", "20000",
              "--device", "cpu", "--quiet", "--no-plot", "--data-dir", str(data_root)]  # fmt: skip
    whole = run_here("train", *common, "--epochs", "2", "--out", tmp_path / "whole", env_extra=env)
    assert whole.returncode == 0, whole.stderr
    assert "accuracy" in whole.stdout
    labeled = json.loads((tmp_path / "whole" / "labeled.json").read_text())
    assert labeled["labeled"] == 100 and len(set(labeled["indices"])) == 100
    metrics = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["test_accuracy"] > 0.5  # chance is 0.1; a classifier on the 100 labels alone gets ~0.7

    # Exact resume on 4,000 images: 1 + 1 epochs against 2 in one go (the accuracy above needs 20,000).
    small = [*common[: common.index("--subset")], "--subset", "4000", *common[common.index("--subset") + 2 :]]
    for out, epochs in (("small", "2"), ("split", "1")):
        trained = run_here("train", *small, "--epochs", epochs, "--out", tmp_path / out, env_extra=env)
        assert trained.returncode == 0, trained.stderr
    resumed = run_here("train", "--resume", tmp_path / "split", "--epochs", "2", "--quiet", "--no-plot", env_extra=env)
    assert resumed.returncode == 0, resumed.stderr
    split_weights = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    whole_weights = torch.load(tmp_path / "small" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(split_weights[name], whole_weights[name]) for name in whole_weights)

    evaluated = run_here("evaluate", tmp_path / "whole", "--k", "5", "--device", "cpu", "--json", env_extra=env)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["classification_accuracy"] == pytest.approx(metrics[-1]["test_accuracy"])
    assert result["elbo"] < result["log_likelihood"] < 0 and result["kl_estimator"] == "monte carlo"
    assert result["digit_accuracy"] > DIGIT_ACCURACY_FLOOR  # chance is 0.1
    sample = run_here("sample", "--run", tmp_path / "whole", "--digit", "3", "--out", tmp_path / "three.png",
                     "--device", "cpu", env_extra=env)  # fmt: skip
    assert sample.returncode == 0 and (tmp_path / "three.png").stat().st_size > 1000, sample.stderr
    plot = run_here("plot", tmp_path / "whole", "--device", "cpu", env_extra=env)
    assert plot.returncode == 0 and "style.png" in plot.stdout, plot.stderr


@pytest.mark.parametrize(
    "run_name, reported",  # the accuracies results/*/README.md and the README report
    [("semi-supervised-100", 0.9114), ("semi-supervised-100-lr1e-4", 0.9215), ("semi-supervised-1000-lr1e-4", 0.9670)],
)
def test_committed_semi_supervised_runs_classify_as_reported(run_name, reported, data_root):
    """The runs the README reports: the current code loads each one, and argmax q(y|x) on the real
    10,000 test images gives the accuracy the README states (to its printed digits)."""
    from conftest import REPO
    from pyro_vae.data import load_dataset
    from pyro_vae.inference import classification_accuracy
    from pyro_vae.runs import load_run

    run_dir = REPO / "results" / run_name
    run = load_run(run_dir, device="cpu")
    test = load_dataset("mnist", str(data_root), torch.device("cpu"), binarize=True).test
    accuracy = classification_accuracy(run.vae, test)
    assert accuracy == pytest.approx(reported, abs=0.5e-4)
