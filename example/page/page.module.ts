import { type DynamicModule, Module } from '@nestjs/common';
import { PAGE_FILES, PageController, readPageFiles } from './page.controller.js';

export interface PageModuleOptions {
  /** The name the page shows, as in the messages (`OTP_APP_NAME`). Default `'Your'`. */
  appName?: string;
  /** Where index.html, page.js and page.css are. Default: found by `pageDirectory()`. */
  directory?: string;
}

/**
 * The example's verification page at `GET /` (with `/page.js` and `/page.css`): enter an email or a
 * phone, enter the code, see the guarded route answer. Plain files, read once when registered.
 */
@Module({})
export class PageModule {
  static register(options: PageModuleOptions = {}): DynamicModule {
    return {
      module: PageModule,
      controllers: [PageController],
      providers: [
        {
          provide: PAGE_FILES,
          useValue: readPageFiles(options.appName || 'Your', options.directory),
        },
      ],
    };
  }
}
