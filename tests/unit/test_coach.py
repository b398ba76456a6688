"""The training coach on hand-made per-epoch rows: each flag when it should, none otherwise."""

from ml.coach import CHANCE_SHARE_OF_GAP, GUESS_LOSS_FACTOR, OVERFIT_EPOCHS, coach


def rows(losses, val_losses=None, val_accuracies=None):
    return [{"epoch": i + 1, "loss": loss,
             "val_loss": val_losses[i] if val_losses else None,
             "val_accuracy": val_accuracies[i] if val_accuracies else None}
            for i, loss in enumerate(losses)]


def codes(flags):
    return [flag["code"] for flag in flags]


def test_a_healthy_run_has_no_flags():
    assert coach(rows([2.3, 1.2, 0.6, 0.4], [2.2, 1.3, 0.8, 0.7], [0.3, 0.6, 0.8, 0.85]),
                 [50, 50, 50]) == []


def test_loss_ending_above_its_first_value_is_divergence():
    flags = coach(rows([2.3, 40.0, 24000.0]))
    assert codes(flags) == ["diverged"]
    assert "24,000" in flags[0]["message"] and "2.3" in flags[0]["message"]
    assert {"section": "training", "name": "learning_rate", "label": "learning rate"} \
        in flags[0]["links"]


def test_a_non_finite_loss_is_divergence():
    flags = coach(rows([2.3, float("nan")]))
    assert codes(flags) == ["diverged"]
    assert "nan" in flags[0]["message"] and "epoch 2" in flags[0]["message"]


def test_a_loss_that_spikes_and_recovers_is_not_divergence():
    assert coach(rows([2.3, 9.0, 1.0])) == []


def test_accuracy_at_the_majority_share_is_chance_level():
    # 10 balanced classes: 10 % is what a constant guess gets.
    flags = coach(rows([2.3, 2.3, 2.3], val_accuracies=[0.09, 0.1, 0.14]), [100] * 10)
    assert codes(flags) == ["chance"]
    assert "11.0%" in flags[0]["message"] and "(10.0%)" in flags[0]["message"]


def test_chance_level_is_the_majority_class_not_one_over_the_classes():
    # 90 % of one class: 88 % accuracy learned nothing, 97 % did.
    assert codes(coach(rows([0.5, 0.4], val_accuracies=[0.85, 0.88]), [90, 10])) == ["chance"]
    assert coach(rows([0.5, 0.4], val_accuracies=[0.95, 0.99]), [90, 10]) == []


def test_chance_level_is_less_than_a_tenth_of_the_way_from_the_majority_to_perfect():
    # Two equal classes: 55 % is a tenth of the way from 50 % to 100 %.
    gap = CHANCE_SHARE_OF_GAP * 0.5
    assert codes(coach(rows([0.69], val_accuracies=[0.5 + gap - 0.001]), [1, 1])) == ["chance"]
    assert coach(rows([0.69], val_accuracies=[0.5 + gap + 0.001]), [1, 1]) == []


def test_the_last_epochs_count_not_a_lucky_one():
    # A best epoch well above chance does not hide that the run ends at chance.
    accuracies = [0.1, 0.4, 0.1, 0.1, 0.1]
    assert codes(coach(rows([2.3] * 5, val_accuracies=accuracies), [1] * 10)) == ["chance"]


def test_learning_rate_1000_on_digits_is_diverged_and_at_chance():
    # A real run's shape: the first epoch already blew up, so the loss falls from there, and
    # only its distance from what a guess gets (ln 10 ≈ 2.3 on ten equal classes) tells.
    run = [{"epoch": epoch, "loss": loss, "accuracy": accuracy, "val_loss": val_loss}
           for epoch, loss, accuracy, val_loss in [
               (1, 49904.95, 0.139, 22107.8), (2, 19008.3, 0.152, 8943.8),
               (3, 11103.4, 0.164, 15857.6), (4, 18918.6, 0.142, 15073.5),
               (5, 14884.6, 0.158, 11377.9)]]
    flags = coach(run, [178] * 10)
    assert codes(flags) == ["diverged", "chance"]
    assert "14,968.9 on average" in flags[0]["message"]
    assert "2.3 that guessing" in flags[0]["message"]
    assert "training accuracy of the last epochs, 15.5%" in flags[1]["message"]


def test_a_slow_start_above_the_guessing_loss_is_not_divergence():
    guess = 0.6931  # ln 2, on two equal classes
    slow = [guess * GUESS_LOSS_FACTOR * 0.99, guess * GUESS_LOSS_FACTOR * 0.95]
    assert coach(rows(slow, val_accuracies=[0.8, 0.9]), [1, 1]) == []
    blown = [guess * GUESS_LOSS_FACTOR * 1.2, guess * GUESS_LOSS_FACTOR * 1.1]
    assert codes(coach(rows(blown, val_accuracies=[0.8, 0.9]), [1, 1])) == ["diverged"]


def test_training_accuracy_is_used_without_a_validation_split():
    flagged = [{"epoch": 1, "loss": 0.7, "accuracy": 0.5}]
    assert codes(coach(flagged, [1, 1])) == ["chance"]


def test_regression_has_no_chance_level():
    assert coach(rows([3.0, 2.0, 1.0]), None) == []


def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    losses = [1.0, 0.8, 0.6, 0.4, 0.2, 0.1]
    val_losses = [1.0, 0.9, 0.95, 1.0, 1.1, 1.2]  # rises from epoch 2 on
    flags = coach(rows(losses, val_losses))
    assert codes(flags) == ["overfit"]
    assert "epoch 2 to 5" in flags[0]["message"]
    assert {"section": "layers", "name": "dropout", "label": "dropout"} in flags[0]["links"]


def test_a_shorter_rise_is_not_overfitting():
    rises = OVERFIT_EPOCHS - 1
    val_losses = [1.0] + [1.0 + 0.1 * (i + 1) for i in range(rises)] + [0.5]
    losses = [1.0 - 0.1 * i for i in range(len(val_losses))]
    assert coach(rows(losses, val_losses)) == []


def test_validation_loss_rising_with_the_training_loss_is_not_overfitting():
    losses = [1.0, 1.0, 1.0, 1.0, 1.0]
    assert coach(rows(losses, [1.0, 1.1, 1.2, 1.3, 1.4])) == []


def test_several_flags_at_once_in_a_fixed_order():
    flags = coach(rows([2.3, 30.0], val_accuracies=[0.1, 0.1]), [10] * 10)
    assert codes(flags) == ["diverged", "chance"]


def test_no_rows_no_flags():
    assert coach([], [5, 5]) == []
