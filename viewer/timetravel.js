// Time travel: a slider over steps 0..max of the selected runs, and a play button that moves it
// forward. At its right end the page follows live; anywhere else the charts show the runs as they
// were at that step (only the drawing goes back, the data held is untouched).

const END = 1000; // the slider's max: positions are thousandths of the largest step
const PLAY_STEP = 5; // thousandths per tick while playing
const PLAY_TICK_MS = 50;

export class TimeTravel {
  /** maxStep(): the largest step held over the selected runs; onChange(until): null means live. */
  constructor({ slider, play, out, maxStep, onChange }) {
    this.slider = slider;
    this.play = play;
    this.out = out;
    this.maxStep = maxStep;
    this.onChange = onChange;
    this.until = null;
    this.timer = 0;
    slider.addEventListener("input", () => {
      // the hand wins over play (the button keeps its face, as it always has)
      clearInterval(this.timer);
      this.timer = 0;
      this._seek();
    });
    play.addEventListener("click", () => {
      if (this.timer) { this._stop(); return; }
      if (+slider.value >= END) slider.value = "0";
      play.textContent = "❚❚";
      this.timer = setInterval(() => {
        slider.value = String(Math.min(END, +slider.value + PLAY_STEP));
        this._seek();
        if (+slider.value >= END) this._stop();
      }, PLAY_TICK_MS);
    });
  }

  _stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.play.textContent = "▶";
  }

  _seek() {
    const frac = +this.slider.value / END;
    // a whole step: the one named in the output is the last one drawn
    this.until = frac >= 1 ? null : Math.round(frac * this.maxStep());
    this.out.textContent = this.until == null ? "live" : `step ${this.until}`;
    this.onChange(this.until);
  }
}
