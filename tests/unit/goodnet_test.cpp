#include "bdguard/goodnet.h"

#include <gtest/gtest.h>

namespace bdguard {
namespace {

TEST(GoodNet, AgreementGivesBadNetLabelDisagreementGivesN) {
  auto g = goodnet_labels({3, 1, 0, 2}, {3, 2, 0, 1}, /*num_classes=*/4);
  EXPECT_EQ(g, (std::vector<int64_t>{3, 4, 0, 4}));
}

TEST(GoodNet, MetricsMatchACountByHand) {
  // Clean: true labels 0 1 2 3; B predicts 0 1 2 0; P predicts 0 1 1 0.
  // G = 0 1 N 0 -> accuracy 2/4 = 50 %, false alarms 1/4 = 25 %.
  // Poisoned (target 0): B predicts 0 0 0 0; P predicts 0 1 2 0.
  // G = 0 N N 0 -> ASR 2/4 = 50 %, detection 2/4 = 50 %.
  GoodNetRow r = goodnet_row("p", 4, {0, 1, 2, 3}, {0, 0, 0, 0}, {0, 1, 2, 0}, {0, 0, 0, 0},
                             {0, 1, 1, 0}, {0, 1, 2, 0});
  EXPECT_DOUBLE_EQ(r.goodnet_accuracy, 50.0);
  EXPECT_DOUBLE_EQ(r.false_alarm_rate, 25.0);
  EXPECT_DOUBLE_EQ(r.goodnet_asr, 50.0);
  EXPECT_DOUBLE_EQ(r.detection_rate, 50.0);
  EXPECT_DOUBLE_EQ(r.badnet_accuracy, 75.0);
  EXPECT_DOUBLE_EQ(r.badnet_asr, 100.0);
  EXPECT_DOUBLE_EQ(r.pruned_accuracy, 50.0);
  EXPECT_DOUBLE_EQ(r.pruned_asr, 50.0);
}

}  // namespace
}  // namespace bdguard
